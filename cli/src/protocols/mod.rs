//! The connector protocols of the field: Airbyte sources and Singer taps.

pub mod airbyte;
pub mod singer;
