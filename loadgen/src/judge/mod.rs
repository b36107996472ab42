//! Judge: from plain records to counts and gates. The two sources of truth (DESIGN.md):
//! `verify` judges a booking run from the server's event log and what each tab received;
//! `truth` judges an app run from what the generator itself published and the memberships it
//! logged; `window` judges a long booking run as it goes, so a tab's ledger stays small. `fault` is a `--scenario`'s phases and recovery. What turns these counts into
//! gates and the verdict is `report` (`Report::decide`, the one place that sets it).

pub mod fault;
pub mod truth;
pub mod verify;
pub mod window;
