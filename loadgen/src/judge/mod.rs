//! Judge: from plain records to counts and gates. The two sources of truth (DESIGN.md):
//! `verify` judges a booking run from the server's event log and what each tab received;
//! `truth` judges an app run from what the generator itself published and the memberships it
//! logged. `fault` is a `--scenario`'s phases and recovery; `compare` turns a baseline into
//! gates by regression rules; `merge` judges the shards of one run as one.

pub mod compare;
pub mod fault;
pub mod merge;
pub mod truth;
pub mod verify;
