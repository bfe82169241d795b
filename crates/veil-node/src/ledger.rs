//! The ledger: the state, the chain head and the store, kept consistent. A block is persisted before
//! anyone learns that its transactions are in.

use crate::store::{Store, StoreError};
use std::io::Write;
use std::path::{Path, PathBuf};
use veil_core::block::{Block, Header, Receipt, tx_root};
use veil_core::state::Genesis;
use veil_core::{B256, CoreError, State, VerifiedTx, apply_verified, verify};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("io error on {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("{0}")]
    Genesis(String),
    #[error("chain check failed at block {block}: {detail}")]
    Broken { block: u64, detail: String },
}

/// The block a batch made (none when every transaction was refused) and each transaction's outcome.
pub type BatchOutcome = (Option<Block>, Vec<Result<Receipt, CoreError>>);

/// Where a checkpoint is, recorded in the store's metadata.
#[derive(serde::Serialize, serde::Deserialize)]
struct CheckpointRef {
    block: u64,
    file: String,
}

pub struct Ledger {
    /// Block 0: implied by the genesis, never stored.
    pub genesis: Header,
    pub state: State,
    pub head: Header,
    pub head_hash: B256,
    pub store: std::sync::Arc<Store>,
    data_dir: PathBuf,
    checkpoint_every: u64,
}

/// What opening (or verifying) found.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenReport {
    pub head: u64,
    pub replayed_blocks: u64,
    pub checkpoint: Option<u64>,
    pub state_digest: B256,
}

fn io(path: &Path, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Io { path: path.to_path_buf(), detail: e.to_string() }
}

fn genesis_header(state: &State) -> Header {
    Header {
        number: 0,
        parent_hash: B256::ZERO,
        timestamp: 0,
        tx_root: tx_root(&[]),
        state_digest: state.digest_b256(),
    }
}

impl Ledger {
    /// The ledger as it stands at genesis, on `store`.
    fn at_genesis(store: Store, genesis: &Genesis, data_dir: &Path, checkpoint_every: u64) -> Ledger {
        let state = State::genesis(genesis);
        let head = genesis_header(&state);
        Ledger {
            genesis: head.clone(),
            head_hash: head.hash(),
            head,
            state,
            store: std::sync::Arc::new(store),
            data_dir: data_dir.to_path_buf(),
            checkpoint_every,
        }
    }

    /// Opens the ledger in `data_dir`, creating it from `genesis` when new. Loads the latest
    /// checkpoint, re-executes the blocks after it and checks every hash and state digest.
    pub fn open(
        data_dir: &Path,
        genesis: Option<&Genesis>,
        checkpoint_every: u64,
    ) -> Result<(Ledger, OpenReport), LedgerError> {
        std::fs::create_dir_all(data_dir.join("checkpoints")).map_err(|e| io(data_dir, e))?;
        let store = Store::open(&data_dir.join("ledger.redb"))?;
        let stored: Option<Genesis> = match store.meta("genesis")? {
            Some(b) => Some(
                serde_json::from_slice(&b)
                    .map_err(|e| LedgerError::Genesis(format!("stored genesis unreadable: {e}")))?,
            ),
            None => None,
        };
        let genesis = match (stored, genesis) {
            (Some(s), Some(g)) if &s != g => {
                return Err(LedgerError::Genesis(format!(
                    "{} holds a ledger with another genesis (chain {}); use another --data-dir or start over",
                    data_dir.display(),
                    s.domain.chain_id
                )));
            }
            (Some(s), _) => s,
            (None, Some(g)) => {
                let bytes = serde_json::to_vec(g).map_err(|e| LedgerError::Genesis(e.to_string()))?;
                store.set_meta("genesis", &bytes)?;
                g.clone()
            }
            (None, None) => {
                return Err(LedgerError::Genesis(format!(
                    "{} holds no ledger: start with --dev or --genesis FILE",
                    data_dir.display()
                )));
            }
        };
        let mut ledger = Ledger::at_genesis(store, &genesis, data_dir, checkpoint_every);
        let checkpoint = match ledger.load_checkpoint() {
            Ok(c) => c,
            Err(e) => {
                // Every block is stored: replay from genesis instead.
                tracing::warn!("checkpoint unusable ({e}); replaying from genesis");
                ledger.state = State::genesis(&genesis);
                ledger.head = ledger.genesis.clone();
                ledger.head_hash = ledger.head.hash();
                None
            }
        };
        let last = ledger.store.last_block()?.unwrap_or(0);
        let from = ledger.head.number + 1;
        for n in from..=last {
            let block =
                ledger.store.block(n)?.ok_or(LedgerError::Broken { block: n, detail: "block missing".into() })?;
            ledger.replay(&block)?;
        }
        let report = OpenReport {
            head: ledger.head.number,
            replayed_blocks: last.saturating_sub(from - 1),
            checkpoint,
            state_digest: ledger.state.digest_b256(),
        };
        Ok((ledger, report))
    }

    fn load_checkpoint(&mut self) -> Result<Option<u64>, LedgerError> {
        let Some(b) = self.store.meta("checkpoint")? else { return Ok(None) };
        let r: CheckpointRef = serde_json::from_slice(&b)
            .map_err(|e| LedgerError::Broken { block: 0, detail: format!("checkpoint record: {e}") })?;
        let path = self.data_dir.join("checkpoints").join(&r.file);
        let f = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
        let state: State = serde_json::from_reader(std::io::BufReader::new(f)).map_err(|e| LedgerError::Broken {
            block: r.block,
            detail: format!("checkpoint {}: {e}", path.display()),
        })?;
        let block = self
            .store
            .block(r.block)?
            .ok_or(LedgerError::Broken { block: r.block, detail: "checkpointed block missing".into() })?;
        if state.full_digest() != block.header.state_digest || state.digest_b256() != block.header.state_digest {
            return Err(LedgerError::Broken {
                block: r.block,
                detail: "checkpoint state does not match the block's state digest".into(),
            });
        }
        self.state = state;
        self.head = block.header.clone();
        self.head_hash = block.hash;
        Ok(Some(r.block))
    }

    /// Re-executes a stored block on the current state and checks it against its header.
    fn replay(&mut self, block: &Block) -> Result<(), LedgerError> {
        let n = block.header.number;
        let broken = |detail: String| LedgerError::Broken { block: n, detail };
        if block.header.parent_hash != self.head_hash || n != self.head.number + 1 {
            return Err(broken("does not follow the previous block".into()));
        }
        if block.header.hash() != block.hash {
            return Err(broken("block hash does not match its header".into()));
        }
        let hashes: Vec<B256> = block.txs.iter().map(|t| t.tx.hash()).collect();
        if tx_root(&hashes) != block.header.tx_root {
            return Err(broken("transaction root does not match".into()));
        }
        let receipts_ok = block.receipts.len() == block.txs.len()
            && block
                .receipts
                .iter()
                .enumerate()
                .all(|(i, r)| r.tx_hash == hashes[i] && r.index as usize == i && r.block == n);
        if !receipts_ok {
            return Err(broken("receipts do not match the transactions".into()));
        }
        for (i, stx) in block.txs.iter().enumerate() {
            let vtx = verify(stx.clone(), &self.state.domain).map_err(|e| broken(format!("transaction {i}: {e}")))?;
            let events = apply_verified(&mut self.state, &vtx, block.header.timestamp)
                .map_err(|e| broken(format!("transaction {i}: {e}")))?;
            if block.receipts.get(i).map(|r| &r.events) != Some(&events) {
                return Err(broken(format!(
                    "transaction {i}: events differ from the stored receipt (tampering, or a ledger written by an older Veil: events now come in PoCo's order; start a fresh ledger)"
                )));
            }
        }
        if self.state.seal() != block.header.state_digest {
            return Err(broken("state digest differs after re-execution (divergence or tampering)".into()));
        }
        self.head = block.header.clone();
        self.head_hash = block.hash;
        Ok(())
    }

    /// Applies verified transactions at `now`; those accepted form the next block, which is
    /// persisted before this returns. Rejected ones change nothing and are not in the block.
    pub fn apply_batch(&mut self, txs: &[VerifiedTx], now: u64) -> Result<BatchOutcome, LedgerError> {
        let timestamp = now.max(self.head.timestamp);
        let number = self.head.number + 1;
        let mut included = vec![];
        let mut receipts = vec![];
        let mut results = vec![];
        for vtx in txs {
            match apply_verified(&mut self.state, vtx, timestamp) {
                Ok(events) => {
                    let r = Receipt { tx_hash: vtx.hash(), block: number, index: included.len() as u32, events };
                    included.push(vtx.signed().clone());
                    receipts.push(r.clone());
                    results.push(Ok(r));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if included.is_empty() {
            return Ok((None, results));
        }
        let hashes: Vec<B256> = receipts.iter().map(|r| r.tx_hash).collect();
        let header = Header {
            number,
            parent_hash: self.head_hash,
            timestamp,
            tx_root: tx_root(&hashes),
            state_digest: self.state.seal(),
        };
        let block = Block { hash: header.hash(), header, txs: included, receipts };
        self.store.append_block(&block)?;
        self.head = block.header.clone();
        self.head_hash = block.hash;
        if self.checkpoint_every > 0 && number.is_multiple_of(self.checkpoint_every) {
            // The block is durable already: a failed checkpoint only makes the next start slower.
            if let Err(e) = self.checkpoint() {
                tracing::warn!(
                    "checkpoint at block {number} failed: {e}; the node goes on (restart replays more blocks)"
                );
            }
        }
        Ok((Some(block), results))
    }

    /// Writes the state to a checkpoint file (fsync, rename), then records it.
    pub fn checkpoint(&self) -> Result<(), LedgerError> {
        let dir = self.data_dir.join("checkpoints");
        let file = format!("state-{:012}.json", self.head.number);
        let path = dir.join(&file);
        let tmp = dir.join(format!("{file}.tmp"));
        {
            let f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
            let mut w = std::io::BufWriter::new(f);
            serde_json::to_writer(&mut w, &self.state).map_err(|e| io(&tmp, e))?;
            w.flush().map_err(|e| io(&tmp, e))?;
            w.get_ref().sync_all().map_err(|e| io(&tmp, e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| io(&dir, e))?;
        let r = serde_json::to_vec(&CheckpointRef { block: self.head.number, file: file.clone() })
            .map_err(|e| io(&path, e))?;
        self.store.set_meta("checkpoint", &r)?;
        // Older checkpoints are no longer needed.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with("state-") && name != file {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }
}

/// Re-executes the whole chain in `data_dir` from genesis, checking every block hash, transaction
/// root, receipt and state digest, and the final digest against a full recomputation.
pub fn verify_chain(data_dir: &Path) -> Result<OpenReport, LedgerError> {
    let store = Store::open(&data_dir.join("ledger.redb"))?;
    let genesis: Genesis = match store.meta("genesis")? {
        Some(b) => {
            serde_json::from_slice(&b).map_err(|e| LedgerError::Genesis(format!("stored genesis unreadable: {e}")))?
        }
        None => return Err(LedgerError::Genesis(format!("{} holds no ledger", data_dir.display()))),
    };
    let mut ledger = Ledger::at_genesis(store, &genesis, data_dir, 0);
    let last = ledger.store.last_block()?.unwrap_or(0);
    for n in 1..=last {
        let block = ledger.store.block(n)?.ok_or(LedgerError::Broken { block: n, detail: "block missing".into() })?;
        ledger.replay(&block)?;
    }
    if ledger.state.full_digest() != ledger.state.digest_b256() {
        return Err(LedgerError::Broken {
            block: last,
            detail: "incremental state digest differs from a full recomputation".into(),
        });
    }
    Ok(OpenReport { head: last, replayed_blocks: last, checkpoint: None, state_digest: ledger.state.digest_b256() })
}
