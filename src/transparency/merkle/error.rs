//! Why a proof does not verify.

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the leaf index {index} is not in a tree of {size} entries")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("a tree of {old} entries cannot be consistent with a smaller tree of {new}")]
    Shrunk { old: u64, new: u64 },
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    #[error("the proof does not lead to the expected root hash")]
    RootMismatch,
}
