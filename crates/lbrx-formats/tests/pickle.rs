//! The pickle reader on byte literals: integers and longs, memo sharing, protocol-0 strings, code-running
//! globals refused, every length checked before use.

use lbrx_formats::pytorch::pickle::{parse, Limits, Node, Pickle, PickleError};

fn p(b: &[u8]) -> Result<Pickle, PickleError> {
    parse(b, 0, Limits::default())
}

#[test]
fn integers_and_longs() {
    // LONG1 of the legacy torch magic number 0x1950a86a20f9469cfc6c.
    let mut b = vec![0x80, 2, 0x8a, 10];
    b.extend_from_slice(&0x1950a86a20f9469cfc6cu128.to_le_bytes()[..10]);
    b.push(b'.');
    let pk = p(&b).unwrap();
    assert_eq!(
        pk.node(pk.root),
        &Node::BigInt(0x1950a86a20f9469cfc6cu128.to_le_bytes()[..10].to_vec())
    );
    let pk = p(b"\x8a\x01\xff.").unwrap();
    assert_eq!(pk.node(pk.root), &Node::Int(-1));
    let pk = p(b"I-12\n.").unwrap();
    assert_eq!(pk.node(pk.root), &Node::Int(-12));
    let pk = p(b"L123456789012345678901234567890L\n.").unwrap();
    assert!(matches!(pk.node(pk.root), Node::BigInt(_)));
}

#[test]
fn memo_shares_nodes() {
    // [x, x] where x = [] memoized: both elements are the same node.
    let pk = p(b"]q\x00(h\x00h\x00l.").unwrap();
    let items = pk.seq(pk.root).unwrap();
    assert_eq!(items[0], items[1]);
}

#[test]
fn protocol0_strings() {
    let pk = p(b"S'a\\'b\\x41\\n'\n.").unwrap();
    assert_eq!(pk.node(pk.root), &Node::Bytes(b"a'bA\n".to_vec()));
    let pk = p(b"Vcaf\\u00e9\n.").unwrap();
    assert_eq!(pk.node(pk.root), &Node::Str("caf\u{e9}".into()));
}

#[test]
fn refuses_code_running_globals() {
    let e = p(b"cos\nsystem\n(S'touch /tmp/x'\ntR.").unwrap_err();
    assert!(matches!(e, PickleError::Malicious { ref global, offset: 0 } if global == "os.system"));
    let e = p(b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.").unwrap_err();
    assert!(matches!(e, PickleError::Malicious { ref global, .. } if global == "builtins.eval"));
}

#[test]
fn lengths_checked_before_use() {
    let mut b = vec![0x80, 4, 0x8d];
    b.extend_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(matches!(p(&b), Err(PickleError::Malformed { .. })));
    let mut b = vec![0x80, 4, 0x95];
    b.extend_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(matches!(p(&b), Err(PickleError::Malformed { .. })));
    let mut b = vec![0x8b];
    b.extend_from_slice(&(i32::MAX).to_le_bytes());
    assert!(matches!(p(&b), Err(PickleError::Malformed { .. })));
    assert!(matches!(p(b"h\x05."), Err(PickleError::Malformed { .. })));
    assert!(matches!(p(b"0."), Err(PickleError::Malformed { .. })));
    assert!(matches!(p(b"N"), Err(PickleError::Malformed { .. })));
}
