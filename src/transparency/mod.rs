//! The ledger as a transparency log, the pure parts: RFC 9162 Merkle trees ([`merkle`]) and
//! C2SP signed notes, checkpoints and cosignatures ([`note`]). Nothing here touches the
//! database; the store keeps the tree in `db::ledger_tree`, and `audit` checks an exported
//! bundle offline.

pub mod merkle;
pub mod note;
