//! The OpenAPI 3 description served at `/openapi.json`.

use serde_json::{Value, json};

fn op(summary: &str, params: &[(&str, &str)]) -> Value {
    let parameters: Vec<Value> = params
        .iter()
        .map(|(name, place)| json!({ "name": name, "in": place, "required": *place == "path", "schema": { "type": "string" } }))
        .collect();
    json!({
        "summary": summary,
        "parameters": parameters,
        "responses": {
            "200": { "description": "OK", "content": { "application/json": {} } },
            "4XX": { "description": "What was wrong", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
        }
    })
}

pub fn document() -> Value {
    let owner = [("owner", "query")];
    let book_filters = [
        ("kind", "path"),
        ("app", "query"),
        ("dataset", "query"),
        ("workerpool", "query"),
        ("requester", "query"),
        ("minTag", "query"),
        ("maxTag", "query"),
        ("category", "query"),
        ("minTrust", "query"),
        ("maxTrust", "query"),
        ("minVolume", "query"),
        ("strict", "query"),
        ("signer", "query"),
        ("beneficiary", "query"),
        ("bulkOnly", "query"),
        ("page", "query"),
        ("pageSize", "query"),
    ];
    let iexec = |what: &str| format!("iExec's {what} (its shapes and status codes; see the README)");
    json!({
        "openapi": "3.0.3",
        "info": { "title": "Veil ledger node", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Signed PoCo transactions, blocks, state queries, the orderbook and a live event stream." },
        "paths": {
            "/health": { "get": op("Liveness", &[]) },
            "/chain": { "get": op("Chain id, EIP-712 domain, head block, state digest, categories", &[]) },
            "/tx": { "post": {
                "summary": "Submit a signed transaction; answers with its receipt once its block is persisted",
                "requestBody": { "required": true, "content": { "application/json": {} } },
                "responses": {
                    "200": { "description": "Receipt: block, index, events" },
                    "400": { "description": "Malformed transaction or wrong chain" },
                    "401": { "description": "Bad signature" },
                    "409": { "description": "Wrong nonce (replay or out of order)" },
                    "413": { "description": "Body too large" },
                    "422": { "description": "Refused by the protocol rules (the error names the rule)" }
                }
            } },
            "/txs": { "post": {
                "summary": "Submit up to 512 signed transactions, sequenced in the given order; answers with one receipt or refusal per transaction once they are persisted",
                "requestBody": { "required": true, "content": { "application/json": {} } },
                "responses": {
                    "200": { "description": "Array of {\"receipt\": …} or {\"refused\": {status, error, kind}}, in order" },
                    "400": { "description": "Not a JSON array" },
                    "413": { "description": "Body too large or too many transactions" }
                }
            } },
            "/tx/{hash}": { "get": op("Receipt of an included transaction", &[("hash", "path")]) },
            "/blocks/latest": { "get": op("The head block", &[]) },
            "/blocks/{n}": { "get": op("Block n with transactions and receipts", &[("n", "path")]) },
            "/accounts/{address}": { "get": op("Wallet, escrow balance, locked, nonce, score", &[("address", "path")]) },
            "/apps": { "get": op("Apps of an owner", &owner) },
            "/apps/{address}": { "get": op("An app", &[("address", "path")]) },
            "/datasets": { "get": op("Datasets of an owner", &owner) },
            "/datasets/{address}": { "get": op("A dataset", &[("address", "path")]) },
            "/workerpools": { "get": op("Workerpools of an owner", &owner) },
            "/workerpools/{address}": { "get": op("A workerpool", &[("address", "path")]) },
            "/categories": { "get": op("Task categories (iExec's market shape when asked with chainId)", &[("chainId", "query")]) },
            "/categories/{catid}": { "get": op(&iexec("market API: a category"), &[("catid", "path"), ("chainId", "query")]) },
            "/deals": { "get": op(&iexec("market API: deals, newest first, with its filters"), &[("chainId", "query")]) },
            "/deals/{id}": { "get": op("A deal (iExec's market shape when asked with chainId)", &[("id", "path"), ("chainId", "query")]) },
            "/challenge": { "get": op(&iexec("market API: an EIP-712 challenge to sign (single use)"), &[("chainId", "query"), ("address", "query")]) },
            "/{kind}orders": {
                "get": op(&iexec("market API: orders of a kind (apporders, datasetorders, workerpoolorders, requestorders)"), &[("kind", "path"), ("chainId", "query")]),
                "post": op(&iexec("market API: publish a signed order (authorization header)"), &[("kind", "path"), ("chainId", "query")]),
                "put": op(&iexec("market API: unpublish by hash, last or all (authorization header)"), &[("kind", "path"), ("chainId", "query")])
            },
            "/{kind}orders/{hash}": { "get": op(&iexec("market API: one published order"), &[("kind", "path"), ("hash", "path"), ("chainId", "query")]) },
            "/{chainId}/workerpools/{address}": { "get": op(&iexec("compass: a workerpool's API URL"), &[("chainId", "path"), ("address", "path")]) },
            "/workerpools/{address}/api": { "post": op("A scheduler announces its workerpool's API URL (signed by the pool's owner)", &[("address", "path")]) },
            "/tasks/{id}": { "get": op("A task", &[("id", "path")]) },
            "/consumed/{hash}": { "get": op("Volume consumed of an order (its EIP-712 hash); 0 if never matched", &[("hash", "path")]) },
            "/orders": { "post": op("Publish a signed order in the orderbook", &[]) },
            "/orders/unpublish": { "post": op("Remove an order (signed by its signer)", &[]) },
            "/orders/{hash}": { "get": op("A published order", &[("hash", "path")]) },
            "/orderbook/{kind}": { "get": op("Orders of a kind, best price first, then oldest; paged", &book_filters) },
            "/events": { "get": op("Server-sent events: each block from `from` on, then live", &[("from", "query")]) },
            "/openapi.json": { "get": op("This document", &[]) }
        },
        "components": { "schemas": { "Error": {
            "type": "object", "required": ["error", "kind"],
            "properties": { "error": { "type": "string" }, "kind": { "type": "string" } }
        } } }
    })
}
