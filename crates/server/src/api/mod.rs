//! The endpoints, one file per group of the contract's HTTP table. Each
//! handler calls one registry operation and shapes its answer.

pub(crate) mod bundle;
pub(crate) mod events;
pub(crate) mod files;
pub(crate) mod health;
pub(crate) mod lifecycle;
pub(crate) mod log;
pub(crate) mod manifest;
pub(crate) mod packages;
pub(crate) mod retention;
pub(crate) mod schemas;
pub(crate) mod storage;
pub(crate) mod uploads;
