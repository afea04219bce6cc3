//! Kea: `kea-dhcp4.conf` and `kea-leases4.csv` (being written).
use std::path::Path;

use super::{ImportError, Imported};

/// Reads the configuration at `conf` and the lease file at `leases`.
pub fn read(conf: &Path, leases: Option<&Path>) -> Result<Imported, ImportError> {
    let _ = (conf, leases);
    Ok(Imported::default())
}
