//! Integration tests: drive the emulator over real HTTP with reqwest.

mod auth;
mod cli;
mod common;
mod control;
mod datalake;
mod faults;
mod ln;
mod m3;
