//! Which enclave platform a worker's TEE tasks run on: `sim` (no hardware protection; any machine)
//! or `tdx` (inside a TDX trust domain: quotes from configfs-tsm, RTMR3 extended with each app's
//! measurement, Intel's collateral from a file the operator keeps fresh). The worker checks its
//! choice at start and refuses TEE tasks with the cause when the platform is not there.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use veil_tee::tdx::{Configfs, ConfigfsTsm, Rtmr3, TdxPlatform};
use veil_tee::{EnclavePlatform, Platform, SimPlatform};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "lowercase")]
pub enum TeeChoice {
    #[default]
    Sim,
    Tdx {
        /// The configfs-tsm report folder.
        tsm: PathBuf,
        /// Where RTMR3 takes extensions.
        rtmr3: PathBuf,
        /// The event log of RTMR3 (kept in the worker's folder for the TD's lifetime).
        rtmr3_log: PathBuf,
        /// Intel's collateral for this platform (dcap-qvl JSON).
        collateral: PathBuf,
    },
}

impl TeeChoice {
    pub fn kind(&self) -> Platform {
        match self {
            TeeChoice::Sim => Platform::Sim,
            TeeChoice::Tdx { .. } => Platform::Tdx,
        }
    }

    /// What the worker says at start: the platform it found, or why TEE tasks cannot run here.
    pub fn check(&self) -> Result<String, String> {
        match self {
            TeeChoice::Sim => Ok(format!("sim ({})", veil_tee::SIM_NOTICE)),
            TeeChoice::Tdx { tsm, rtmr3, collateral, .. } => {
                ConfigfsTsm::detect(tsm, Box::new(Configfs)).map_err(|e| e.to_string())?;
                writable(rtmr3).map_err(|e| format!("RTMR3 at {}: {e}", rtmr3.display()))?;
                read_collateral(collateral)?;
                Ok(format!("tdx (quotes from configfs-tsm at {}, RTMR3 at {})", tsm.display(), rtmr3.display()))
            }
        }
    }

    /// The platform an enclave process uses.
    pub fn platform(&self) -> Result<Box<dyn EnclavePlatform>, String> {
        match self {
            TeeChoice::Sim => Ok(Box::new(SimPlatform)),
            TeeChoice::Tdx { tsm, rtmr3, rtmr3_log, collateral } => Ok(Box::new(TdxPlatform {
                tsm: ConfigfsTsm::detect(tsm, Box::new(Configfs)).map_err(|e| e.to_string())?,
                rtmr3: Rtmr3::new(rtmr3, rtmr3_log),
                collateral: read_collateral(collateral)?,
            })),
        }
    }
}

fn writable(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new().write(true).open(path).map(|_| ())
}

fn read_collateral(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("Intel collateral {}: {e}", path.display()))?;
    veil_tee::dcap::parse_collateral(text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text)
}
