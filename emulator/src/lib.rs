//! A local Infor ION API Gateway (work in progress: see issue 3).
