//! The iExec runtime contract (DESIGN.md §4): deal `params`, and the environment an app sees.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// What a deal's `params` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pub args: String,
    pub input_files: Vec<String>,
    /// Requester secret index → secret name.
    pub secrets: BTreeMap<u32, String>,
    pub result_encryption: bool,
    pub storage_provider: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawParams {
    #[serde(default)]
    iexec_args: Option<String>,
    #[serde(default)]
    iexec_input_files: Option<Vec<String>>,
    #[serde(default)]
    iexec_secrets: Option<BTreeMap<String, String>>,
    #[serde(default)]
    iexec_result_encryption: Option<bool>,
    #[serde(default)]
    iexec_result_storage_provider: Option<String>,
}

impl Params {
    /// JSON params as iExec defines them; any other string is the args themselves.
    pub fn parse(params: &str) -> Result<Params, String> {
        let t = params.trim();
        if !t.starts_with('{') {
            return Ok(Params { args: params.to_string(), ..Default::default() });
        }
        let raw: RawParams =
            serde_json::from_str(t).map_err(|e| format!("deal params are not valid iExec JSON: {e}"))?;
        let mut secrets = BTreeMap::new();
        for (k, v) in raw.iexec_secrets.unwrap_or_default() {
            let i: u32 = k.parse().map_err(|_| format!("iexec_secrets key `{k}` is not a number"))?;
            secrets.insert(i, v);
        }
        Ok(Params {
            args: raw.iexec_args.unwrap_or_default(),
            input_files: raw.iexec_input_files.unwrap_or_default(),
            secrets,
            result_encryption: raw.iexec_result_encryption.unwrap_or(false),
            storage_provider: raw.iexec_result_storage_provider,
        })
    }

    /// The args split as a shell would (quotes respected).
    pub fn argv(&self) -> Result<Vec<String>, String> {
        shlex::split(&self.args).ok_or_else(|| format!("args `{}` have unbalanced quotes", self.args))
    }
}

/// Everything about a task the environment carries.
#[derive(Debug, Clone, Default)]
pub struct TaskInfo {
    pub deal_id: String,
    pub task_id: String,
    pub task_index: u64,
    pub bot_first: u64,
    pub bot_size: u64,
    /// The dataset's address and its file name in `IEXEC_IN`.
    pub dataset: Option<(String, String)>,
    /// File names of the input files, in `IEXEC_IN`.
    pub input_files: Vec<String>,
    /// TEE mode only.
    pub app_secret: Option<String>,
    /// TEE mode only: index → value.
    pub requester_secrets: BTreeMap<u32, String>,
}

/// The exact environment of an iExec app (and nothing else).
pub fn environment(t: &TaskInfo, iexec_in: &Path, iexec_out: &Path) -> Vec<(String, String)> {
    let mut env = vec![
        ("IEXEC_IN".to_string(), iexec_in.display().to_string()),
        ("IEXEC_OUT".to_string(), iexec_out.display().to_string()),
        ("IEXEC_DEAL_ID".to_string(), t.deal_id.clone()),
        ("IEXEC_TASK_ID".to_string(), t.task_id.clone()),
        ("IEXEC_TASK_INDEX".to_string(), t.task_index.to_string()),
        ("IEXEC_BOT_SIZE".to_string(), t.bot_size.to_string()),
        ("IEXEC_BOT_FIRST_INDEX".to_string(), t.bot_first.to_string()),
        ("IEXEC_BOT_TASK_INDEX".to_string(), t.task_index.saturating_sub(t.bot_first).to_string()),
        ("IEXEC_INPUT_FILES_NUMBER".to_string(), t.input_files.len().to_string()),
        ("IEXEC_INPUT_FILES_FOLDER".to_string(), iexec_in.display().to_string()),
    ];
    let (addr, file) = t.dataset.clone().unwrap_or_default();
    env.push(("IEXEC_DATASET_ADDRESS".into(), addr));
    env.push(("IEXEC_DATASET_FILENAME".into(), file));
    for (i, name) in t.input_files.iter().enumerate() {
        env.push((format!("IEXEC_INPUT_FILE_NAME_{}", i + 1), name.clone()));
    }
    if let Some(s) = &t.app_secret {
        env.push(("IEXEC_APP_DEVELOPER_SECRET".into(), s.clone()));
    }
    for (i, v) in &t.requester_secrets {
        env.push((format!("IEXEC_REQUESTER_SECRET_{i}"), v.clone()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_forms() {
        assert_eq!(Params::parse("--x 1").unwrap().args, "--x 1");
        let p = Params::parse(r#"{"iexec_args":"a 'b c'","iexec_input_files":["http://x/f"],"iexec_secrets":{"1":"tok"},"iexec_result_encryption":true}"#).unwrap();
        assert_eq!(p.argv().unwrap(), vec!["a", "b c"]);
        assert_eq!(p.input_files, vec!["http://x/f"]);
        assert_eq!(p.secrets.get(&1).map(String::as_str), Some("tok"));
        assert!(p.result_encryption);
        assert!(Params::parse(r#"{"iexec_secrets":{"x":"y"}}"#).is_err());
        assert!(Params::parse(r#"{"iexec_args": 5}"#).is_err());
    }
}
