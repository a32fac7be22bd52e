//! The command's subcommands.

pub mod bench;
pub mod common;
pub mod demo;
pub mod sim;
