//! The command's subcommands.

pub mod bench;
pub mod cluster;
pub mod common;
pub mod compare;
pub mod demo;
pub mod failover;
pub mod groupbench;
pub mod keys;
pub mod link;
pub mod node;
pub mod sim;
pub mod timeline;
