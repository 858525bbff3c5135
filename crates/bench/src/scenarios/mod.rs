//! One module per group of issue-5 scenarios; each returns its Markdown
//! section with figures, ratios and goals.

pub mod collect;
pub mod dataset;
pub mod follow;
pub mod large_file;
pub mod proofs;
pub mod resumable;
pub mod small_files;
pub mod web_ui;
