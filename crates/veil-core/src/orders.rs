//! The four PoCo orders, their EIP-712 struct hashes (DESIGN.md §3.1, byte for byte as iExec), and
//! their JSON form with PoCo's field names.

use crate::crypto::{self, PrivateKey, Signature, SignatureError};
use crate::eip712::{Domain, Encoder};
use crate::{tag, uint};
use alloy_primitives::{Address, B256, U256};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

pub const APP_ORDER_TYPE: &str = "AppOrder(address app,uint256 appprice,uint256 volume,bytes32 tag,address datasetrestrict,address workerpoolrestrict,address requesterrestrict,bytes32 salt)";
pub const DATASET_ORDER_TYPE: &str = "DatasetOrder(address dataset,uint256 datasetprice,uint256 volume,bytes32 tag,address apprestrict,address workerpoolrestrict,address requesterrestrict,bytes32 salt)";
pub const WORKERPOOL_ORDER_TYPE: &str = "WorkerpoolOrder(address workerpool,uint256 workerpoolprice,uint256 volume,bytes32 tag,uint256 category,uint256 trust,address apprestrict,address datasetrestrict,address requesterrestrict,bytes32 salt)";
pub const REQUEST_ORDER_TYPE: &str = "RequestOrder(address app,uint256 appmaxprice,address dataset,uint256 datasetmaxprice,address workerpool,uint256 workerpoolmaxprice,address requester,uint256 volume,bytes32 tag,uint256 category,uint256 trust,address beneficiary,address callback,string params,bytes32 salt)";

mod tag_serde {
    use super::*;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<B256, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Str(String),
            List(Vec<String>),
        }
        match Raw::deserialize(d)
            .map_err(|_| D::Error::custom("expected a bytes32 hex string or a list of tag names"))?
        {
            Raw::Str(s) => tag::parse(&s).map_err(D::Error::custom),
            Raw::List(l) => tag::from_names(&l).map_err(D::Error::custom),
        }
    }
    pub fn serialize<S: Serializer>(t: &B256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{t:?}"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppOrder {
    pub app: Address,
    #[serde(with = "uint")]
    pub appprice: U256,
    #[serde(with = "uint")]
    pub volume: U256,
    #[serde(with = "tag_serde")]
    pub tag: B256,
    pub datasetrestrict: Address,
    pub workerpoolrestrict: Address,
    pub requesterrestrict: Address,
    pub salt: B256,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetOrder {
    pub dataset: Address,
    #[serde(with = "uint")]
    pub datasetprice: U256,
    #[serde(with = "uint")]
    pub volume: U256,
    #[serde(with = "tag_serde")]
    pub tag: B256,
    pub apprestrict: Address,
    pub workerpoolrestrict: Address,
    pub requesterrestrict: Address,
    pub salt: B256,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerpoolOrder {
    pub workerpool: Address,
    #[serde(with = "uint")]
    pub workerpoolprice: U256,
    #[serde(with = "uint")]
    pub volume: U256,
    #[serde(with = "tag_serde")]
    pub tag: B256,
    #[serde(with = "uint")]
    pub category: U256,
    #[serde(with = "uint")]
    pub trust: U256,
    pub apprestrict: Address,
    pub datasetrestrict: Address,
    pub requesterrestrict: Address,
    pub salt: B256,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestOrder {
    pub app: Address,
    #[serde(with = "uint")]
    pub appmaxprice: U256,
    pub dataset: Address,
    #[serde(with = "uint")]
    pub datasetmaxprice: U256,
    pub workerpool: Address,
    #[serde(with = "uint")]
    pub workerpoolmaxprice: U256,
    pub requester: Address,
    #[serde(with = "uint")]
    pub volume: U256,
    #[serde(with = "tag_serde")]
    pub tag: B256,
    #[serde(with = "uint")]
    pub category: U256,
    #[serde(with = "uint")]
    pub trust: U256,
    pub beneficiary: Address,
    pub callback: Address,
    pub params: String,
    pub salt: B256,
}

/// Which of the four orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderKind {
    App,
    Dataset,
    Workerpool,
    Request,
}

impl fmt::Display for OrderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OrderKind::App => "app",
            OrderKind::Dataset => "dataset",
            OrderKind::Workerpool => "workerpool",
            OrderKind::Request => "request",
        })
    }
}

impl std::str::FromStr for OrderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().trim_end_matches("order") {
            "app" => Ok(OrderKind::App),
            "dataset" => Ok(OrderKind::Dataset),
            "workerpool" => Ok(OrderKind::Workerpool),
            "request" => Ok(OrderKind::Request),
            _ => Err(format!("unknown order kind `{s}` (use app, dataset, workerpool or request)")),
        }
    }
}

/// What every order can do: hash itself and say whose signature it needs.
pub trait Order: Clone + fmt::Debug + Serialize + DeserializeOwned {
    const KIND: OrderKind;
    fn struct_hash(&self) -> B256;
    fn volume(&self) -> U256;
    fn salt(&self) -> B256;

    fn typed_hash(&self, domain: &Domain) -> B256 {
        domain.typed_hash(&self.struct_hash())
    }
}

impl Order for AppOrder {
    const KIND: OrderKind = OrderKind::App;
    fn struct_hash(&self) -> B256 {
        Encoder::new(APP_ORDER_TYPE)
            .address(self.app)
            .uint(self.appprice)
            .uint(self.volume)
            .bytes32(self.tag)
            .address(self.datasetrestrict)
            .address(self.workerpoolrestrict)
            .address(self.requesterrestrict)
            .bytes32(self.salt)
            .finish()
    }
    fn volume(&self) -> U256 {
        self.volume
    }
    fn salt(&self) -> B256 {
        self.salt
    }
}

impl DatasetOrder {
    /// The all-zero dataset order: what `matchOrders` takes when a deal has no dataset.
    pub fn none() -> DatasetOrder {
        DatasetOrder {
            dataset: Address::ZERO,
            datasetprice: U256::ZERO,
            volume: U256::ZERO,
            tag: B256::ZERO,
            apprestrict: Address::ZERO,
            workerpoolrestrict: Address::ZERO,
            requesterrestrict: Address::ZERO,
            salt: B256::ZERO,
        }
    }
}

impl Order for DatasetOrder {
    const KIND: OrderKind = OrderKind::Dataset;
    fn struct_hash(&self) -> B256 {
        Encoder::new(DATASET_ORDER_TYPE)
            .address(self.dataset)
            .uint(self.datasetprice)
            .uint(self.volume)
            .bytes32(self.tag)
            .address(self.apprestrict)
            .address(self.workerpoolrestrict)
            .address(self.requesterrestrict)
            .bytes32(self.salt)
            .finish()
    }
    fn volume(&self) -> U256 {
        self.volume
    }
    fn salt(&self) -> B256 {
        self.salt
    }
}

impl Order for WorkerpoolOrder {
    const KIND: OrderKind = OrderKind::Workerpool;
    fn struct_hash(&self) -> B256 {
        Encoder::new(WORKERPOOL_ORDER_TYPE)
            .address(self.workerpool)
            .uint(self.workerpoolprice)
            .uint(self.volume)
            .bytes32(self.tag)
            .uint(self.category)
            .uint(self.trust)
            .address(self.apprestrict)
            .address(self.datasetrestrict)
            .address(self.requesterrestrict)
            .bytes32(self.salt)
            .finish()
    }
    fn volume(&self) -> U256 {
        self.volume
    }
    fn salt(&self) -> B256 {
        self.salt
    }
}

impl Order for RequestOrder {
    const KIND: OrderKind = OrderKind::Request;
    fn struct_hash(&self) -> B256 {
        Encoder::new(REQUEST_ORDER_TYPE)
            .address(self.app)
            .uint(self.appmaxprice)
            .address(self.dataset)
            .uint(self.datasetmaxprice)
            .address(self.workerpool)
            .uint(self.workerpoolmaxprice)
            .address(self.requester)
            .uint(self.volume)
            .bytes32(self.tag)
            .uint(self.category)
            .uint(self.trust)
            .address(self.beneficiary)
            .address(self.callback)
            .string(&self.params)
            .bytes32(self.salt)
            .finish()
    }
    fn volume(&self) -> U256 {
        self.volume
    }
    fn salt(&self) -> B256 {
        self.salt
    }
}

/// An order with its signature, written as iExec writes signed orders: the order's fields plus `sign`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed<O> {
    pub order: O,
    /// `None` for an order presigned on the ledger.
    pub sign: Option<Signature>,
}

impl<O: Order> Signed<O> {
    pub fn new(order: O, key: &PrivateKey, domain: &Domain) -> Self {
        let sign = Some(key.sign_hash(&order.typed_hash(domain)));
        Signed { order, sign }
    }

    /// An order without a signature: valid only once presigned on the ledger.
    pub fn presigned(order: O) -> Self {
        Signed { order, sign: None }
    }

    /// The address whose key made `sign` over the order's typed hash `hash`.
    pub fn signer_of(&self, hash: &B256) -> Result<Address, SignatureError> {
        match &self.sign {
            Some(sig) => crypto::recover(hash, sig),
            None => Err(SignatureError::Length(0)),
        }
    }
}

impl<O: Order> Serialize for Signed<O> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v = serde_json::to_value(&self.order).map_err(serde::ser::Error::custom)?;
        if let (Some(m), Some(sign)) = (v.as_object_mut(), &self.sign) {
            m.insert("sign".into(), serde_json::Value::String(sign.to_hex()));
        }
        v.serialize(s)
    }
}

impl<'de, O: Order> Deserialize<'de> for Signed<O> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let (order, sign) = parse_order_value::<O>(v).map_err(D::Error::custom)?;
        Ok(Signed { order, sign })
    }
}

/// A bad order file: says which field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} order: {detail}")]
pub struct OrderParseError {
    pub kind: OrderKind,
    pub detail: String,
}

/// Parses an order from JSON text. Accepts the bare order, the order with a `sign` field, an
/// orderbook entry `{ "order": { … } }`, and the iExec SDK's files: `iexec.json`
/// (`{ "order": { "apporder": { … } } }`) and `orders.json` (`{ "134": { "apporder": { … } } }`).
/// Returns the order and its signature when present.
pub fn parse_order<O: Order>(json: &str) -> Result<(O, Option<Signature>), OrderParseError> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| OrderParseError { kind: O::KIND, detail: format!("not valid JSON: {e}") })?;
    parse_order_value(v)
}

fn parse_order_value<O: Order>(mut v: serde_json::Value) -> Result<(O, Option<Signature>), OrderParseError> {
    let err = |detail: String| OrderParseError { kind: O::KIND, detail };
    v = unwrap_order(v, &format!("{}order", O::KIND)).map_err(err)?;
    let obj = v.as_object_mut().ok_or_else(|| err("expected a JSON object".into()))?;
    let sign = match obj.remove("sign") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s.is_empty() || s == "0x" => None,
        Some(serde_json::Value::String(s)) => {
            Some(Signature::parse_hex(&s).map_err(|e| err(format!("field `sign`: {e}")))?)
        }
        Some(_) => return Err(err("field `sign`: expected a 0x hex string".into())),
    };
    let order = serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." { err(inner) } else { err(format!("field `{path}`: {inner}")) }
    })?;
    Ok((order, sign))
}

/// Finds the order inside the wrappers iExec tools put around it.
fn unwrap_order(mut v: serde_json::Value, key: &str) -> Result<serde_json::Value, String> {
    for _ in 0..3 {
        let Some(obj) = v.as_object() else { break };
        let next = if let Some(o) = obj.get(key) {
            o.clone()
        } else if let Some(o) = obj.get("order").filter(|o| o.is_object()) {
            o.clone()
        } else {
            let chains: Vec<_> =
                obj.iter().filter(|(k, x)| k.bytes().all(|b| b.is_ascii_digit()) && x.is_object()).collect();
            match chains.as_slice() {
                [(_, o)] if obj.len() == 1 => (*o).clone(),
                [_, _, ..] => return Err("the file holds orders for several chains; keep only one".into()),
                _ => break,
            }
        };
        v = next;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_wrappers_are_unwrapped() {
        let bare = parse_order::<AppOrder>(&app_json()).unwrap();
        for wrapped in [
            format!("{{\"order\": {}}}", app_json()),
            format!("{{\"order\": {{\"apporder\": {}}}}}", app_json()),
            format!("{{\"134\": {{\"apporder\": {}}}}}", app_json()),
        ] {
            assert_eq!(parse_order::<AppOrder>(&wrapped).unwrap(), bare, "{wrapped}");
        }
        let two = format!("{{\"134\": {{\"apporder\": {0}}}, \"1\": {{\"apporder\": {0}}}}}", app_json());
        assert!(parse_order::<AppOrder>(&two).unwrap_err().to_string().contains("several chains"));
    }

    fn app_json() -> String {
        r#"{"app":"0x0000000000000000000000000000000000000001","appprice":"0x0a","volume":3,
            "tag":"0x3","datasetrestrict":"0x0000000000000000000000000000000000000000",
            "workerpoolrestrict":"0x0000000000000000000000000000000000000000",
            "requesterrestrict":"0x0000000000000000000000000000000000000000",
            "salt":"0x0000000000000000000000000000000000000000000000000000000000000001"}"#
            .to_string()
    }

    #[test]
    fn numbers_in_three_forms() {
        let (o, s) = parse_order::<AppOrder>(&app_json()).unwrap();
        assert_eq!(o.appprice, U256::from(10));
        assert_eq!(o.volume, U256::from(3));
        assert_eq!(o.tag.0[31], 3);
        assert!(s.is_none());
    }

    fn check_bad(json: &str, needle: &str) {
        let e = parse_order::<AppOrder>(json).unwrap_err().to_string();
        assert!(e.contains(needle), "error `{e}` should mention `{needle}`");
    }

    #[test]
    fn bad_orders_name_the_field() {
        check_bad(&app_json().replace("\"0x0a\"", "\"ten\""), "appprice");
        check_bad(&app_json().replace("\"volume\":3,", ""), "volume");
        check_bad(&app_json().replace("\"volume\":3", "\"volume\":3,\"extra\":1"), "extra");
        check_bad(&app_json().replace("\"0x3\"", "\"0xzz\""), "tag");
        check_bad("[1]", "object");
        check_bad("{", "JSON");
        check_bad(
            &app_json().replace(
                "\"volume\":3",
                "\"volume\":\"0x1ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\"",
            ),
            "volume",
        );
    }

    #[test]
    fn signed_roundtrip() {
        let (o, _) = parse_order::<AppOrder>(&app_json()).unwrap();
        let d = Domain { chain_id: 134, verifying_contract: Address::repeat_byte(7) };
        let k = PrivateKey::from_seed("owner");
        let s = Signed::new(o, &k, &d);
        assert_eq!(s.signer_of(&s.order.typed_hash(&d)).unwrap(), k.address());
        let json = serde_json::to_string(&s).unwrap();
        let back: Signed<AppOrder> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
