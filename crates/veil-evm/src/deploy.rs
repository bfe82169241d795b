//! Deploys iExec's PoCo v6 from the unpacked `@iexec/poco@6.1.0` npm package, as iExec deploys it:
//! RLC, the diamond with its three base facets, the `IexecLibOrders_v5` library, 13 PoCo facets
//! (linked here: the package's deployed facets are linked to another network's library), the three
//! registries, `configure` and the five categories. Bytecode is only ever read from the package.

use crate::abi::{IDiamond, IHub, IRegistry, IRlc};
use crate::error::EvmError;
use crate::rpc::{Outgoing, Rpc};
use alloy::json_abi::JsonAbi;
use alloy::primitives::{Address, Bytes, FixedBytes, U256};
use alloy::sol_types::{SolCall, SolValue};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use veil_core::PrivateKey;

/// The facets added to the diamond, in order (a selector already present is not added again).
pub const POCO_FACETS: [&str; 13] = [
    "IexecAccessorsABILegacyFacet",
    "IexecCategoryManagerFacet",
    "IexecConfigurationExtraFacet",
    "IexecConfigurationFacet",
    "IexecERC20Facet",
    "IexecEscrowTokenFacet",
    "IexecOrderManagementFacet",
    "IexecPoco1Facet",
    "IexecPoco2Facet",
    "IexecPocoAccessorsFacet",
    "IexecPocoBoostAccessorsFacet",
    "IexecPocoBoostFacet",
    "IexecRelayFacet",
];

/// PoCo's five categories (name, reference time in seconds).
pub const CATEGORIES: [(&str, u64); 5] = [("XS", 300), ("S", 1200), ("M", 3600), ("L", 10800), ("XL", 36000)];

/// Where PoCo lives on a chain: what `veil evm deploy-poco` writes and the EVM backend reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub chain_id: u64,
    pub hub: Address,
    pub rlc: Address,
    pub app_registry: Address,
    pub dataset_registry: Address,
    pub workerpool_registry: Address,
    pub deployer: Address,
    pub poco_version: String,
    /// Transactions sent and gas used by the deployment.
    pub transactions: usize,
    pub gas_used: u64,
}

const CREATE_GAS: u64 = 12_000_000;
const CALL_GAS: u64 = 3_000_000;

struct Artifact {
    abi: JsonAbi,
    /// Creation code in hex (no `0x`); unlinked code has `__$…$__` placeholders.
    hex: String,
    /// Byte offsets where `IexecLibOrders_v5`'s address goes.
    links: Vec<usize>,
    path: PathBuf,
}

impl Artifact {
    /// The creation code with `lib` written at every link reference.
    fn code(&self, lib: Option<Address>) -> Result<Vec<u8>, EvmError> {
        let mut hex_code = self.hex.clone();
        if let Some(lib) = lib {
            let lib_hex = hex::encode(lib.as_slice());
            for &at in &self.links {
                hex_code.replace_range(at * 2..at * 2 + 40, &lib_hex);
            }
        }
        hex::decode(&hex_code)
            .map_err(|e| EvmError::Package(format!("{}: `bytecode` is not hex (unlinked?): {e}", self.path.display())))
    }

    fn bytecode(&self) -> Result<Vec<u8>, EvmError> {
        self.code(None)
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value, EvmError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        EvmError::Package(format!(
            "cannot read {}: {e} (unpack @iexec/poco@6.1.0 with `npm pack @iexec/poco@6.1.0 && tar xzf iexec-poco-6.1.0.tgz`, or run scripts/evm-deps, and pass --poco DIR)",
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| EvmError::Package(format!("{} is not JSON: {e}", path.display())))
}

fn hex_field(v: &serde_json::Value, field: &str, path: &Path) -> Result<Vec<u8>, EvmError> {
    let s = v[field].as_str().ok_or_else(|| EvmError::Package(format!("{} has no `{field}`", path.display())))?;
    hex::decode(s.trim_start_matches("0x"))
        .map_err(|e| EvmError::Package(format!("{}: `{field}` is not hex: {e}", path.display())))
}

fn load(path: PathBuf) -> Result<Artifact, EvmError> {
    let v = read_json(&path)?;
    // RLC's deployment file has no ABI: it is only deployed, never cut into the diamond.
    let abi_json = if v["abi"].is_null() { serde_json::json!([]) } else { v["abi"].clone() };
    let abi: JsonAbi = serde_json::from_value(abi_json)
        .map_err(|e| EvmError::Package(format!("{}: unreadable ABI: {e}", path.display())))?;
    let hex = v["bytecode"]
        .as_str()
        .map(|s| s.trim_start_matches("0x").to_string())
        .ok_or_else(|| EvmError::Package(format!("{} has no `bytecode`", path.display())))?;
    let mut links = Vec::new();
    if let Some(refs) = v["linkReferences"].as_object() {
        for (file, libs) in refs {
            for (lib, places) in libs.as_object().into_iter().flatten() {
                if lib != "IexecLibOrders_v5" {
                    return Err(EvmError::Package(format!("{}: unknown library {file}:{lib}", path.display())));
                }
                for p in places.as_array().into_iter().flatten() {
                    let start = p["start"].as_u64().unwrap_or(u64::MAX) as usize;
                    if start.checked_add(20).is_none_or(|end| end * 2 > hex.len()) {
                        return Err(EvmError::Package(format!(
                            "{}: link reference out of the bytecode",
                            path.display()
                        )));
                    }
                    links.push(start);
                }
            }
        }
    }
    Ok(Artifact { abi, hex, links, path })
}

fn selectors(abi: &JsonAbi) -> Vec<FixedBytes<4>> {
    let mut s: Vec<FixedBytes<4>> = abi.functions().map(|f| f.selector()).collect();
    if abi.receive.is_some() {
        s.push(FixedBytes([0, 0, 0, 0]));
    }
    if abi.fallback.is_some() {
        s.push(FixedBytes([0xff; 4]));
    }
    s
}

/// The package's files this deployment reads.
struct Package {
    root: PathBuf,
}

impl Package {
    fn open(root: &Path) -> Result<Package, EvmError> {
        let pkg = read_json(&root.join("package.json"))?;
        let name = pkg["name"].as_str().unwrap_or_default();
        let version = pkg["version"].as_str().unwrap_or_default();
        if name != "@iexec/poco" || !version.starts_with("6.") {
            return Err(EvmError::Package(format!(
                "{} holds {name}@{version}, not @iexec/poco 6.x: pass the folder of @iexec/poco@6.1.0",
                root.display()
            )));
        }
        Ok(Package { root: root.to_path_buf() })
    }

    fn deployed(&self, name: &str) -> Result<Artifact, EvmError> {
        load(self.root.join("deployments/arbitrum").join(format!("{name}.json")))
    }

    fn artifact(&self, dir: &str, name: &str) -> Result<Artifact, EvmError> {
        load(self.root.join("artifacts/contracts").join(dir).join(format!("{name}.sol/{name}.json")))
    }
}

/// The diamond's creation code without the constructor arguments the package's file ends with.
fn diamond_code(pkg: &Package) -> Result<Vec<u8>, EvmError> {
    let path = pkg.root.join("deployments/arbitrum/Diamond.json");
    let v = read_json(&path)?;
    let code = hex_field(&v, "bytecode", &path)?;
    let bad = || EvmError::Package(format!("{}: unreadable constructor arguments", path.display()));
    let raw = v["args"].as_array().filter(|a| a.len() == 2).ok_or_else(bad)?;
    let cuts = raw[0].as_array().ok_or_else(bad)?.iter().map(cut_from_json).collect::<Result<Vec<_>, _>>()?;
    let args = (cuts, args_from_json(&raw[1])?);
    let encoded = args.abi_encode_params();
    code.strip_suffix(encoded.as_slice()).map(<[u8]>::to_vec).ok_or_else(|| {
        EvmError::Package(format!("{}: the bytecode does not end with its constructor arguments", path.display()))
    })
}

fn addr(v: &serde_json::Value) -> Result<Address, EvmError> {
    v.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| EvmError::Package(format!("`{v}` is not an address")))
}

fn cut_from_json(v: &serde_json::Value) -> Result<IDiamond::FacetCut, EvmError> {
    let sels = v["functionSelectors"].as_array().cloned().unwrap_or_default();
    let function_selectors = sels
        .iter()
        .map(|s| {
            s.as_str()
                .and_then(|s| s.parse::<FixedBytes<4>>().ok())
                .ok_or_else(|| EvmError::Package(format!("bad selector {s}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(IDiamond::FacetCut {
        facetAddress: addr(&v["facetAddress"])?,
        action: v["action"].as_u64().unwrap_or(0) as u8,
        functionSelectors: function_selectors,
    })
}

fn args_from_json(v: &serde_json::Value) -> Result<IDiamond::DiamondArgs, EvmError> {
    let data = v["initCalldata"].as_str().unwrap_or("0x");
    Ok(IDiamond::DiamondArgs {
        owner: addr(&v["owner"])?,
        init: addr(&v["init"])?,
        initCalldata: hex::decode(data.trim_start_matches("0x")).map_err(|e| EvmError::Package(e.to_string()))?.into(),
    })
}

/// Progress of a deployment, one line a step.
pub type Progress<'a> = &'a mut dyn FnMut(&str);

/// Deploys PoCo from the package at `poco` with `key` (which receives the 87 M RLC), plain CREATE
/// from the key's next nonce.
pub async fn deploy_poco(
    rpc: &Rpc,
    poco: &Path,
    key: &PrivateKey,
    progress: Progress<'_>,
) -> Result<Deployment, EvmError> {
    let pkg = Package::open(poco)?;
    let deployer = key.address();
    let eth = rpc.eth_balance(deployer).await?;
    if eth.is_zero() {
        return Err(EvmError::Setup(format!(
            "{deployer} has no ETH to pay for gas: fund it (on anvil, use a dev account)"
        )));
    }
    let mut nonce = rpc.nonce_of(deployer).await?;
    let mut plan: Vec<Outgoing> = Vec::new();
    let mut create = |plan: &mut Vec<Outgoing>, what: &str, code: Vec<u8>| -> Address {
        let a = deployer.create(nonce);
        nonce += 1;
        plan.push(Outgoing { to: None, data: code.into(), gas: CREATE_GAS, what: format!("deploy {what}") });
        a
    };
    let rlc = create(&mut plan, "RLC", pkg.deployed("RLC")?.bytecode()?);
    let init = create(&mut plan, "DiamondInit", pkg.deployed("DiamondInit")?.bytecode()?);
    let mut present: HashSet<FixedBytes<4>> = HashSet::new();
    let mut base_cuts = Vec::new();
    for name in ["DiamondCutFacet", "DiamondLoupeFacet", "OwnershipFacet"] {
        let art = pkg.deployed(name)?;
        let a = create(&mut plan, name, art.bytecode()?);
        let sels: Vec<_> = selectors(&art.abi).into_iter().filter(|s| present.insert(*s)).collect();
        base_cuts.push(IDiamond::FacetCut { facetAddress: a, action: 0, functionSelectors: sels });
    }
    let diamond_args =
        IDiamond::DiamondArgs { owner: deployer, init, initCalldata: IDiamond::initCall {}.abi_encode().into() };
    let mut code = diamond_code(&pkg)?;
    code.extend((base_cuts, diamond_args).abi_encode_params());
    let hub = create(&mut plan, "Diamond (the hub)", code);
    let lib = create(&mut plan, "IexecLibOrders_v5", pkg.artifact("libs", "IexecLibOrders_v5")?.bytecode()?);
    let mut cuts = Vec::new();
    for name in POCO_FACETS {
        let art = pkg.artifact("facets", name)?;
        let a = create(&mut plan, name, art.code(Some(lib))?);
        let sels: Vec<_> = selectors(&art.abi).into_iter().filter(|s| present.insert(*s)).collect();
        if !sels.is_empty() {
            cuts.push((name, IDiamond::FacetCut { facetAddress: a, action: 0, functionSelectors: sels }));
        }
    }
    let app_registry = create(&mut plan, "AppRegistry", pkg.artifact("registries/apps", "AppRegistry")?.bytecode()?);
    let dataset_registry =
        create(&mut plan, "DatasetRegistry", pkg.artifact("registries/datasets", "DatasetRegistry")?.bytecode()?);
    let workerpool_registry = create(
        &mut plan,
        "WorkerpoolRegistry",
        pkg.artifact("registries/workerpools", "WorkerpoolRegistry")?.bytecode()?,
    );
    let call =
        |to: Address, what: String, data: Vec<u8>| Outgoing { to: Some(to), data: data.into(), gas: CALL_GAS, what };
    for (name, cut) in cuts {
        let data =
            IDiamond::diamondCutCall { cuts: vec![cut], init: Address::ZERO, initCalldata: Bytes::new() }.abi_encode();
        plan.push(call(hub, format!("diamondCut(Add {name})"), data));
    }
    for (reg, uri) in [(app_registry, "app"), (dataset_registry, "dataset"), (workerpool_registry, "workerpool")] {
        plan.push(call(
            reg,
            format!("{uri} registry initialize"),
            IRegistry::initializeCall { previous: Address::ZERO }.abi_encode(),
        ));
        let base = format!("https://nfts-metadata.iex.ec/{uri}/");
        plan.push(call(
            reg,
            format!("{uri} registry setBaseURI"),
            IRegistry::setBaseURICall { baseUri: base }.abi_encode(),
        ));
    }
    let configure = IHub::configureCall {
        token: rlc,
        name: "Staked RLC".into(),
        symbol: "SRLC".into(),
        decimals: 9,
        appregistry: app_registry,
        datasetregistry: dataset_registry,
        workerpoolregistry: workerpool_registry,
        v3hub: Address::ZERO,
    };
    plan.push(call(hub, "configure".into(), configure.abi_encode()));
    for (name, t) in CATEGORIES {
        let c = IHub::createCategoryCall {
            name: name.into(),
            description: format!("{{\"name\":\"{name}\"}}"),
            workClockTimeRef: U256::from(t),
        };
        plan.push(call(hub, format!("createCategory {name}"), c.abi_encode()));
    }
    let transactions = plan.len();
    progress(&format!("sending {transactions} transactions from {deployer}"));
    let mut gas_used = 0u64;
    for (r, out) in rpc.send(key, plan.clone()).await.into_iter().zip(&plan) {
        let mined = r?;
        gas_used += mined.receipt.gas_used;
        if out.to.is_none() && mined.receipt.contract_address.is_none() {
            return Err(EvmError::Decode(format!("{} created no contract", out.what)));
        }
    }
    let d = Deployment {
        chain_id: rpc.chain_id,
        hub,
        rlc,
        app_registry,
        dataset_registry,
        workerpool_registry,
        deployer,
        poco_version: "6.1.0".into(),
        transactions,
        gas_used,
    };
    check_deployment(rpc, &d).await?;
    progress(&format!("PoCo hub {hub}: {transactions} transactions, {gas_used} gas"));
    Ok(d)
}

/// Checks what iExec's own deployment checks: the token's name, 5 categories, the EIP-712 domain.
pub async fn check_deployment(rpc: &Rpc, d: &Deployment) -> Result<(), EvmError> {
    let name = rpc.view(d.hub, IHub::nameCall {}).await?;
    let count = rpc.view(d.hub, IHub::countCategoryCall {}).await?;
    if name != "Staked RLC" || count != U256::from(5) {
        return Err(EvmError::Setup(format!(
            "the deployed hub answers name `{name}` and {count} categories, not Staked RLC and 5"
        )));
    }
    crate::ledger::check_domain(rpc, d.hub).await
}

/// Adds a category (the hub's owner only).
pub fn create_category(hub: Address, c: &veil_core::state::Category) -> Outgoing {
    let call = IHub::createCategoryCall {
        name: c.name.clone(),
        description: c.description.clone(),
        workClockTimeRef: U256::from(c.work_clock_time_ref),
    };
    Outgoing { to: Some(hub), data: call.abi_encode().into(), gas: 300_000, what: format!("createCategory {}", c.name) }
}

/// Funds `to` with RLC from `key` (PoCo's deployer holds all 87 M).
pub fn rlc_transfer(rlc: Address, to: Address, amount: U256) -> Outgoing {
    Outgoing {
        to: Some(rlc),
        data: IRlc::transferCall { to, amount }.abi_encode().into(),
        gas: 100_000,
        what: format!("RLC transfer to {to}"),
    }
}
