//! The literal arguments of pickle opcodes that need decoding: `LONG1`/`LONG4` two's-complement bytes, and
//! protocol 0's text forms (decimal integers, Python string literals with escapes, raw-unicode-escape text).

use super::pickle::Node;

/// An integer from little-endian two's-complement bytes (`LONG1`/`LONG4`).
pub(super) fn long_node(b: Vec<u8>) -> Node {
    if b.is_empty() {
        return Node::Int(0);
    }
    if b.len() <= 8 {
        let neg = b[b.len() - 1] & 0x80 != 0;
        let mut a = [if neg { 0xff } else { 0 }; 8];
        a[..b.len()].copy_from_slice(&b);
        return Node::Int(i64::from_le_bytes(a));
    }
    Node::BigInt(b)
}

/// A decimal integer literal as little-endian two's-complement bytes.
pub(super) fn decimal_to_le(t: &str) -> Option<Vec<u8>> {
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut mag: Vec<u8> = vec![0];
    for c in digits.bytes() {
        let mut carry = (c - b'0') as u32;
        for byte in mag.iter_mut() {
            let v = *byte as u32 * 10 + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
        if carry > 0 {
            mag.push(carry as u8);
        }
    }
    mag.push(0);
    if neg {
        let mut carry = 1u16;
        for byte in mag.iter_mut() {
            let v = (!*byte) as u16 + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
    }
    Some(mag)
}

/// The bytes of a Python string literal as protocol 0's `STRING` writes it (`'...'` or `"..."`, with escapes).
pub(super) fn python_string_literal(l: &[u8]) -> Option<Vec<u8>> {
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    let q = *l.first()?;
    if (q != b'\'' && q != b'"') || l.len() < 2 || l[l.len() - 1] != q {
        return None;
    }
    let body = &l[1..l.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *body.get(i)?;
        i += 1;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'\\' | b'\'' | b'"' => out.push(e),
            b'\n' => {}
            b'x' => {
                let h = std::str::from_utf8(body.get(i..i + 2)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut v = (e - b'0') as u32;
                for _ in 0..2 {
                    match body.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

/// Protocol 0's `UNICODE` argument: latin-1 bytes with `\uXXXX` / `\UXXXXXXXX` escapes.
pub(super) fn raw_unicode_escape(l: &[u8]) -> String {
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    let mut out = String::with_capacity(l.len());
    let mut i = 0;
    while i < l.len() {
        if l[i] == b'\\' && matches!(l.get(i + 1), Some(b'u') | Some(b'U')) {
            let n = if l[i + 1] == b'u' { 4 } else { 8 };
            if let Some(c) = l
                .get(i + 2..i + 2 + n)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
            {
                out.push(c);
                i += 2 + n;
                continue;
            }
        }
        out.push(l[i] as char);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_as_twos_complement() {
        assert_eq!(decimal_to_le("-1"), Some(vec![0xff, 0xff]));
        assert_eq!(decimal_to_le("256"), Some(vec![0, 1, 0]));
        assert_eq!(decimal_to_le("1x"), None);
    }
}
