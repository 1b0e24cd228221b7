//! Online master-key rotation: every envelope sealed under an older key is opened and sealed
//! again under the active key, in pages, each write a compare-and-swap on the old bytes so a
//! concurrent refresh (which seals under the active key itself) wins. Safe to interrupt and run
//! again; once nothing references an old key, its id is forgotten and the key can be dropped
//! from the configuration.

use super::{Sealed, Vault, VaultError};
use crate::store::{Store, StoreError};

/// What a rotation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Envelopes sealed again under the active key.
    pub resealed: u64,
    /// Key ids no envelope references any more (forgotten).
    pub retired: Vec<String>,
}

/// Why a rotation stopped.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{table}.{column} of row {row}: {source}")]
    Open { table: String, column: String, row: String, source: VaultError },
}

/// Re-seals everything under the active key; `progress` hears after each page how many
/// envelopes were looked at and re-sealed so far (the CLI draws its progress bar from it).
pub async fn rotate(
    store: &Store,
    vault: &Vault,
    mut progress: impl FnMut(&Rotation, u64),
) -> Result<Rotation, RotateError> {
    let mut checked = 0u64;
    let mut done = Rotation::default();
    let active = vault.active_key_id().to_owned();
    for &column in Sealed::ROTATED {
        let (table, _, col) = column.location();
        let mut after = String::new();
        loop {
            let page = store.sealed_page(column, &after, 200).await?;
            let Some((last, _)) = page.last() else { break };
            let next = last.clone();
            checked += page.len() as u64;
            for (row, envelope) in page {
                if Vault::key_id_of(&envelope) == Some(active.as_str()) {
                    continue;
                }
                let slot = column.slot(&row);
                let plain = vault.open(slot, &envelope).map_err(|source| RotateError::Open {
                    table: table.into(),
                    column: col.into(),
                    row: row.clone(),
                    source,
                })?;
                if store.reseal(column, &row, &envelope, &vault.seal(slot, &plain)).await? {
                    done.resealed += 1;
                }
            }
            after = next;
            progress(&done, checked);
        }
    }
    // Forget the ids nothing references any more (checked, not assumed).
    let recorded = store.vault_keys().await?;
    for (key_id, _) in recorded {
        if key_id != active && !references(store, &key_id).await? {
            store.forget_vault_key(&key_id).await?;
            done.retired.push(key_id);
        }
    }
    Ok(done)
}

async fn references(store: &Store, key_id: &str) -> Result<bool, StoreError> {
    for &column in Sealed::ROTATED {
        let mut after = String::new();
        loop {
            let page = store.sealed_page(column, &after, 500).await?;
            let Some((last, _)) = page.last() else { break };
            if page.iter().any(|(_, e)| Vault::key_id_of(e) == Some(key_id)) {
                return Ok(true);
            }
            after = last.clone();
        }
    }
    Ok(false)
}
