#!/usr/bin/env python3
"""Generates EIP-712 test vectors for the four PoCo orders with eth-account, an independent
implementation (pip install eth-account). Output: crates/veil-core/tests/fixtures/order_vectors.json.
Run: python3 tools/gen_order_vectors.py"""
import json, os
from eth_account import Account
from eth_account.messages import encode_typed_data

KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil account 0
A = lambda n: "0x" + f"{n:040x}"
B = lambda n: "0x" + f"{n:064x}"

TYPES = {
    "app": ("AppOrder", [("app", "address"), ("appprice", "uint256"), ("volume", "uint256"), ("tag", "bytes32"),
                         ("datasetrestrict", "address"), ("workerpoolrestrict", "address"), ("requesterrestrict", "address"), ("salt", "bytes32")]),
    "dataset": ("DatasetOrder", [("dataset", "address"), ("datasetprice", "uint256"), ("volume", "uint256"), ("tag", "bytes32"),
                                 ("apprestrict", "address"), ("workerpoolrestrict", "address"), ("requesterrestrict", "address"), ("salt", "bytes32")]),
    "workerpool": ("WorkerpoolOrder", [("workerpool", "address"), ("workerpoolprice", "uint256"), ("volume", "uint256"), ("tag", "bytes32"),
                                       ("category", "uint256"), ("trust", "uint256"), ("apprestrict", "address"), ("datasetrestrict", "address"),
                                       ("requesterrestrict", "address"), ("salt", "bytes32")]),
    "request": ("RequestOrder", [("app", "address"), ("appmaxprice", "uint256"), ("dataset", "address"), ("datasetmaxprice", "uint256"),
                                 ("workerpool", "address"), ("workerpoolmaxprice", "uint256"), ("requester", "address"), ("volume", "uint256"),
                                 ("tag", "bytes32"), ("category", "uint256"), ("trust", "uint256"), ("beneficiary", "address"),
                                 ("callback", "address"), ("params", "string"), ("salt", "bytes32")]),
}

ORDERS = {
    "app": {"app": A(0xA11), "appprice": 1000000000, "volume": 1000000, "tag": B(3), "datasetrestrict": A(0),
            "workerpoolrestrict": A(0), "requesterrestrict": A(0x7e7), "salt": B(0xdeadbeef)},
    "dataset": {"dataset": A(0xDA7A), "datasetprice": 0, "volume": 10, "tag": B(1), "apprestrict": A(0xA11),
                "workerpoolrestrict": A(0), "requesterrestrict": A(0), "salt": B(42)},
    "workerpool": {"workerpool": A(0xB001), "workerpoolprice": 25000000, "volume": 5, "tag": B(0x103), "category": 2, "trust": 1,
                   "apprestrict": A(0), "datasetrestrict": A(0), "requesterrestrict": A(0), "salt": B(2**255 + 7)},
    "request": {"app": A(0xA11), "appmaxprice": 1000000000, "dataset": A(0xDA7A), "datasetmaxprice": 0, "workerpool": A(0),
                "workerpoolmaxprice": 25000000, "requester": A(0x7e7), "volume": 1, "tag": B(3), "category": 2, "trust": 0,
                "beneficiary": A(0x7e7), "callback": A(0),
                "params": "{\"iexec_args\":\"--in hello ünïcode\",\"iexec_result_encryption\":true}", "salt": B(99)},
}

DOMAINS = [(134, "0x3eca1B216A7DF1C7689aEb259fFB83ADFB894E7f"), (42161, "0x098bFCb1E50ebcA0BaA92C12eA0c3F045A1aD9f0")]

out = []
for chain_id, contract in DOMAINS:
    for kind, (name, fields) in TYPES.items():
        msg = dict(ORDERS[kind])
        typed = {
            "types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                       {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
                      name: [{"name": n, "type": t} for n, t in fields]},
            "primaryType": name,
            "domain": {"name": "iExecODB", "version": "5.0.0", "chainId": chain_id, "verifyingContract": contract},
            "message": msg,
        }
        signable = encode_typed_data(full_message=typed)
        signed = Account.sign_message(signable, KEY)
        order_json = {k: (str(v) if isinstance(v, int) else v) for k, v in msg.items()}
        out.append({"kind": kind, "chainId": chain_id, "verifyingContract": contract, "order": order_json,
                    "hash": "0x" + signed.message_hash.hex().removeprefix("0x"),
                    "signature": "0x" + signed.signature.hex().removeprefix("0x")})

path = os.path.join(os.path.dirname(__file__), "..", "crates", "veil-core", "tests", "fixtures", "order_vectors.json")
with open(path, "w") as f:
    json.dump({"generator": "eth-account " + __import__("importlib.metadata").metadata.version("eth-account"),
               "signer": Account.from_key(KEY).address, "privateKey": KEY, "vectors": out}, f, indent=1, ensure_ascii=False)
print(f"wrote {len(out)} vectors to {os.path.normpath(path)}")
