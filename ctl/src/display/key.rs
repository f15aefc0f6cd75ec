//! A generated key: the key itself on stdout (it is the output), or where
//! it was written.

use std::path::Path;

use berkut_proto::archive::MasterKey;
use serde_json::json;

use super::json_line;

/// The key went to `file`: its id, never the key.
pub fn written(json: bool, key: &MasterKey, file: &Path) {
    if json {
        json_line(&json!({ "key_id": key.key_id().to_string(), "file": file }));
    } else {
        eprintln!("wrote key {} to {}", key.key_id(), file.display());
    }
}

/// The key itself, for standard output.
pub fn printed(json: bool, key: &MasterKey, text: &str) {
    if json {
        json_line(&json!({ "key_id": key.key_id().to_string(), "key": text }));
    } else {
        println!("{text}");
    }
}
