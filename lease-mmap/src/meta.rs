//! What is not a fixed-size record, as rkyv archives validated on open (`FORMAT.md` §4):
//! a table's description of its subnet and pools, and the checkpoint manifest.
#![forbid(unsafe_code)]

use rkyv::rancor;
use rkyv::util::AlignedVec;

/// A table's description of its subnet and pools (in its header, `FORMAT.md` §2.2).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct TableDesc {
    pub(crate) network: u32,
    pub(crate) prefix_len: u8,
    pub(crate) first: u32,
    pub(crate) last: u32,
    pub(crate) allocatable: Vec<AddrRange>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AddrRange {
    pub(crate) first: u32,
    pub(crate) last: u32,
}

/// The checkpoint manifest (`FORMAT.md` §6).
#[derive(
    rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, Default, PartialEq, Eq,
)]
pub(crate) struct Manifest {
    pub(crate) format: u32,
    /// The store was closed with [`crate::Store::close`] after its last checkpoint.
    pub(crate) clean: bool,
    /// Per journal: every entry up to this LSN is in the msync'ed tables.
    pub(crate) journals: Vec<JournalMark>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct JournalMark {
    pub(crate) worker: u16,
    pub(crate) lsn: u64,
}

pub(crate) fn to_bytes_desc(d: &TableDesc) -> Vec<u8> {
    rkyv::to_bytes::<rancor::Error>(d)
        .map(|v| v.to_vec())
        .unwrap_or_default()
}

pub(crate) fn to_bytes_manifest(m: &Manifest) -> Vec<u8> {
    rkyv::to_bytes::<rancor::Error>(m)
        .map(|v| v.to_vec())
        .unwrap_or_default()
}

fn aligned(bytes: &[u8]) -> AlignedVec<16> {
    let mut a = AlignedVec::<16>::with_capacity(bytes.len());
    a.extend_from_slice(bytes);
    a
}

/// Why a stored description (a table's or the manifest) could not be read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MetaError {
    /// The bytes could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The stored length is zero or runs past the header.
    #[error("description length {0} out of range")]
    Length(u64),
    /// The checksum over the stored bytes does not match.
    #[error("description checksum mismatch")]
    Checksum,
    /// The bytes are not a valid archive (bytecheck).
    #[error("{0}")]
    Invalid(rancor::Error),
}

/// Validate (bytecheck) and deserialize a description.
pub(crate) fn desc_from_bytes(bytes: &[u8]) -> Result<TableDesc, MetaError> {
    rkyv::from_bytes::<TableDesc, rancor::Error>(&aligned(bytes)).map_err(MetaError::Invalid)
}

/// Validate (bytecheck) and deserialize a manifest.
pub(crate) fn manifest_from_bytes(bytes: &[u8]) -> Result<Manifest, MetaError> {
    rkyv::from_bytes::<Manifest, rancor::Error>(&aligned(bytes)).map_err(MetaError::Invalid)
}
