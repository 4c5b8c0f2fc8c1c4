//! A pickle reader that builds an inert value tree and never calls anything.
//!
//! Spec: the opcode list of CPython's `Lib/pickletools.py` (protocols 0-5) and PEP 3154 (framing, protocol 4)
//! and PEP 574 (protocol 5). Written by hand: no crate reads pickles without either executing them or
//! leaving out the protocol-0 text opcodes and persistent ids a checkpoint needs.
//!
//! Every object the stream builds becomes a [`Node`] in one arena; the stack, the memo and containers hold
//! [`Id`]s into it, so a memoized object that is fetched a million times is still one node (shared, never
//! cloned). Calls (`REDUCE`, `NEWOBJ`, `INST`, `OBJ`) are recorded as [`Node::Object`] with their callable and
//! arguments; `BUILD` and `SETITEMS` on such an object attach state and items to it. Globals are classified by
//! [`crate::pytorch::policy`] as they are read: one that can run code refuses the whole file.
//!
//! Limits: every length field is checked against the bytes left before anything is allocated; the arena holds
//! at most one node per opcode; the mark stack, the memo and integers have caps.

use super::literals::{decimal_to_le, long_node, python_string_literal, raw_unicode_escape};
use super::policy::{classify, GlobalClass};
use std::collections::HashMap;

/// Index of a node in [`Pickle::nodes`].
pub type Id = usize;

/// One value the pickle stream built.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `None`.
    None,
    /// A boolean.
    Bool(bool),
    /// An integer that fits 64 bits.
    Int(i64),
    /// A larger integer: its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A text string.
    Str(String),
    /// A byte string (`bytes`, `bytearray`, protocol-2 `str`).
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<Id>),
    /// A list.
    List(Vec<Id>),
    /// A dict, in insertion order.
    Dict(Vec<(Id, Id)>),
    /// A set or frozenset.
    Set(Vec<Id>),
    /// A reference to `module.name` (never imported).
    Global {
        /// The module.
        module: String,
        /// The attribute.
        name: String,
        /// What the allowlist says of it.
        class: GlobalClass,
    },
    /// A persistent id (`PERSID`, `BINPERSID`): what the loader's `persistent_load` would be asked for.
    PersId(Id),
    /// A call that was recorded, not made: `callable(*args)`, then `BUILD`/`SETITEMS`/`APPENDS` applied.
    Object {
        /// The callable (usually a [`Node::Global`]).
        callable: Id,
        /// The argument tuple.
        args: Id,
        /// `BUILD` state, if any.
        state: Option<Id>,
        /// Items set on it (`SETITEM(S)` on a dict subclass such as `OrderedDict`).
        items: Vec<(Id, Id)>,
        /// Items appended to it (`APPEND(S)` on a list subclass).
        list: Vec<Id>,
    },
}

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickleError {
    /// The stream breaks the pickle format at `offset`.
    Malformed {
        /// Byte offset of the opcode.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// The stream names a global that can run code.
    Malicious {
        /// Byte offset of the opcode.
        offset: u64,
        /// `module.name`.
        global: String,
    },
    /// A cap was exceeded.
    Limit {
        /// Byte offset of the opcode.
        offset: u64,
        /// What and which cap.
        what: String,
    },
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PickleError::Malformed { offset, what } => {
                write!(f, "malformed pickle at byte {offset}: {what}")
            }
            PickleError::Malicious { offset, global } => write!(
                f,
                "refused as malicious: the pickle references '{global}' (at byte {offset}), which can run \
                 code when loaded; nothing was executed. Do not load this file with torch.load"
            ),
            PickleError::Limit { offset, what } => write!(f, "pickle at byte {offset}: {what}"),
        }
    }
}

/// Caps that bound what a pickle can make the reader allocate.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open `MARK`s at once.
    pub max_marks: usize,
    /// Stack depth.
    pub max_stack: usize,
    /// Memo entries.
    pub max_memo: usize,
    /// Bytes of one integer (`LONG1`/`LONG4`, text `LONG`).
    pub max_int_bytes: usize,
    /// Bytes of one text line (protocol-0 opcodes).
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_marks: 100_000,
            max_stack: 10_000_000,
            max_memo: 10_000_000,
            max_int_bytes: 1024,
            max_line: 1 << 20,
        }
    }
}

/// A parsed pickle: the arena, the root value, and the globals it referenced.
#[derive(Debug)]
pub struct Pickle {
    /// Every node built, in creation order.
    pub nodes: Vec<Node>,
    /// The value `STOP` returned.
    pub root: Id,
    /// Bytes consumed (up to and including `STOP`).
    pub consumed: usize,
}

impl Pickle {
    /// The node `id`.
    pub fn node(&self, id: Id) -> &Node {
        &self.nodes[id]
    }

    /// `module.name` if `id` is a global.
    pub fn global(&self, id: Id) -> Option<(&str, &str)> {
        match &self.nodes[id] {
            Node::Global { module, name, .. } => Some((module, name)),
            _ => None,
        }
    }

    /// The elements of a tuple or list.
    pub fn seq(&self, id: Id) -> Option<&[Id]> {
        match &self.nodes[id] {
            Node::Tuple(v) | Node::List(v) => Some(v),
            _ => None,
        }
    }

    /// An integer value.
    pub fn int(&self, id: Id) -> Option<i64> {
        match &self.nodes[id] {
            Node::Int(i) => Some(*i),
            Node::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// A string value (text, or bytes that are UTF-8).
    pub fn str(&self, id: Id) -> Option<&str> {
        match &self.nodes[id] {
            Node::Str(s) => Some(s),
            Node::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    /// Where the current opcode started (for errors).
    op_at: usize,
    nodes: Vec<Node>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
    limits: Limits,
    /// Offset at which a deferred malicious global was found (refused at the end of the opcode).
    base: u64,
}

/// Parses one pickle from the start of `data`. `base` is added to offsets in errors (the pickle's position in
/// its file).
pub fn parse(data: &[u8], base: u64, limits: Limits) -> Result<Pickle, PickleError> {
    let mut vm = Vm {
        data,
        pos: 0,
        op_at: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        limits,
        base,
    };
    let root = vm.run()?;
    Ok(Pickle {
        nodes: vm.nodes,
        root,
        consumed: vm.pos,
    })
}

impl Vm<'_> {
    fn off(&self) -> u64 {
        self.base + self.op_at as u64
    }

    fn bad<T>(&self, what: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError::Malformed {
            offset: self.off(),
            what: what.into(),
        })
    }

    fn limit<T>(&self, what: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError::Limit {
            offset: self.off(),
            what: what.into(),
        })
    }

    fn take(&mut self, n: u64) -> Result<&[u8], PickleError> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return self.bad(format!(
                "declares {n} bytes but only {left} remain in the pickle"
            ));
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N as u64)?);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u64, PickleError> {
        Ok(u32::from_le_bytes(self.le()?) as u64)
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.le()?))
    }

    /// A `\n`-terminated line (protocol-0 arguments), without the newline.
    fn line(&mut self) -> Result<&[u8], PickleError> {
        let rest = &self.data[self.pos..];
        let window = &rest[..rest.len().min(self.limits.max_line + 1)];
        match window.iter().position(|&b| b == b'\n') {
            Some(n) => {
                let s = &self.data[self.pos..self.pos + n];
                self.pos += n + 1;
                Ok(s)
            }
            None if rest.len() > self.limits.max_line => self.limit(format!(
                "text line longer than the cap of {} bytes",
                self.limits.max_line
            )),
            None => self.bad("text argument has no terminating newline"),
        }
    }

    fn line_str(&mut self) -> Result<String, PickleError> {
        let l = self.line()?;
        match std::str::from_utf8(l) {
            Ok(s) => Ok(s.trim_end_matches('\r').to_string()),
            Err(_) => self.bad("text argument is not UTF-8"),
        }
    }

    fn alloc(&mut self, n: Node) -> Id {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    fn push(&mut self, n: Node) -> Result<(), PickleError> {
        let id = self.alloc(n);
        self.push_id(id)
    }

    fn push_id(&mut self, id: Id) -> Result<(), PickleError> {
        if self.stack.len() >= self.limits.max_stack {
            return self.limit(format!(
                "stack deeper than the cap of {}",
                self.limits.max_stack
            ));
        }
        self.stack.push(id);
        Ok(())
    }

    fn pop(&mut self) -> Result<Id, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.bad("stack underflow");
        }
        Ok(self.stack.pop().expect("checked"))
    }

    fn top(&self) -> Result<Id, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        match self.stack.last() {
            Some(&id) if self.stack.len() > floor => Ok(id),
            _ => self.bad("stack underflow"),
        }
    }

    /// Pops everything above the last mark, and the mark.
    fn pop_mark(&mut self) -> Result<Vec<Id>, PickleError> {
        let Some(m) = self.marks.pop() else {
            return self.bad("no MARK to pop to");
        };
        Ok(self.stack.split_off(m))
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let id = self.top()?;
        if self.memo.len() >= self.limits.max_memo && !self.memo.contains_key(&key) {
            return self.limit(format!(
                "more memo entries than the cap of {}",
                self.limits.max_memo
            ));
        }
        self.memo.insert(key, id);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        match self.memo.get(&key) {
            Some(&id) => self.push_id(id),
            None => self.bad(format!("memo entry {key} was never stored")),
        }
    }

    fn global(&mut self, module: String, name: String) -> Result<Id, PickleError> {
        let class = classify(&module, &name);
        if class == GlobalClass::Dangerous {
            return Err(PickleError::Malicious {
                offset: self.off(),
                global: format!("{module}.{name}"),
            });
        }
        Ok(self.alloc(Node::Global {
            module,
            name,
            class,
        }))
    }

    fn int_bytes(&mut self, n: u64) -> Result<Node, PickleError> {
        if n > self.limits.max_int_bytes as u64 {
            // Checked against the bytes left first, so a huge length is reported as the lie it is.
            self.take(n)?;
            return self.limit(format!(
                "integer of {n} bytes exceeds the cap of {}",
                self.limits.max_int_bytes
            ));
        }
        let b = self.take(n)?.to_vec();
        Ok(long_node(b))
    }

    fn text_int(&mut self) -> Result<Node, PickleError> {
        let s = self.line_str()?;
        let t = s.trim().trim_end_matches('L');
        match t {
            "00" => return Ok(Node::Bool(false)),
            "01" => return Ok(Node::Bool(true)),
            _ => {}
        }
        if t.len() > self.limits.max_int_bytes * 3 {
            return self.limit("text integer longer than the cap");
        }
        match t.parse::<i64>() {
            Ok(i) => Ok(Node::Int(i)),
            Err(_) => match decimal_to_le(t) {
                Some(b) => Ok(long_node(b)),
                None => self.bad(format!("'{t}' is not an integer")),
            },
        }
    }

    /// Appends `items` to the container `target`.
    fn append(&mut self, target: Id, items: Vec<Id>) -> Result<(), PickleError> {
        match &mut self.nodes[target] {
            Node::List(v) => v.extend(items),
            Node::Set(v) => v.extend(items),
            Node::Object { list, .. } => list.extend(items),
            _ => return self.bad("APPEND to an object that is not a list"),
        }
        Ok(())
    }

    fn set_items(&mut self, target: Id, flat: Vec<Id>) -> Result<(), PickleError> {
        if !flat.len().is_multiple_of(2) {
            return self.bad("SETITEMS with an odd number of items");
        }
        let pairs = flat.chunks_exact(2).map(|p| (p[0], p[1]));
        match &mut self.nodes[target] {
            Node::Dict(v) => v.extend(pairs),
            Node::Object { items, .. } => items.extend(pairs),
            _ => return self.bad("SETITEM on an object that is not a dict"),
        }
        Ok(())
    }

    fn object(&mut self, callable: Id, args: Id) -> Result<(), PickleError> {
        self.push(Node::Object {
            callable,
            args,
            state: None,
            items: Vec::new(),
            list: Vec::new(),
        })
    }

    fn run(&mut self) -> Result<Id, PickleError> {
        loop {
            self.op_at = self.pos;
            if self.pos >= self.data.len() {
                return self.bad("pickle ends without STOP");
            }
            let op = self.u8()?;
            match op {
                b'.' => {
                    let id = self.pop()?;
                    return Ok(id);
                }
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return self.bad(format!("unsupported pickle protocol {p}"));
                    }
                }
                0x95 => {
                    // FRAME: a length prefix; the bytes that follow are read as usual.
                    let n = self.u64()?;
                    let left = (self.data.len() - self.pos) as u64;
                    if n > left {
                        return self
                            .bad(format!("FRAME declares {n} bytes but only {left} remain"));
                    }
                }
                b'(' => {
                    if self.marks.len() >= self.limits.max_marks {
                        return self.limit(format!(
                            "more nested MARKs than the cap of {}",
                            self.limits.max_marks
                        ));
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let t = self.top()?;
                    self.push_id(t)?;
                }
                b'N' => self.push(Node::None)?,
                0x88 => self.push(Node::Bool(true))?,
                0x89 => self.push(Node::Bool(false))?,
                b'I' => {
                    let n = self.text_int()?;
                    self.push(n)?
                }
                b'L' => {
                    let n = self.text_int()?;
                    let n = match n {
                        Node::Bool(b) => Node::Int(b as i64),
                        n => n,
                    };
                    self.push(n)?
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?) as i64;
                    self.push(Node::Int(v))?
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    self.push(Node::Int(v))?
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?) as i64;
                    self.push(Node::Int(v))?
                }
                0x8a => {
                    let n = self.u8()? as u64;
                    let v = self.int_bytes(n)?;
                    self.push(v)?
                }
                0x8b => {
                    let n = i32::from_le_bytes(self.le()?);
                    if n < 0 {
                        return self.bad("LONG4 with a negative length");
                    }
                    let v = self.int_bytes(n as u64)?;
                    self.push(v)?
                }
                b'F' => {
                    let s = self.line_str()?;
                    match s.trim().parse::<f64>() {
                        Ok(f) => self.push(Node::Float(f))?,
                        Err(_) => return self.bad(format!("'{s}' is not a float")),
                    }
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.push(Node::Float(v))?
                }
                b'S' => {
                    let l = self.line()?.to_vec();
                    match python_string_literal(&l) {
                        Some(b) => self.push(Node::Bytes(b))?,
                        None => return self.bad("STRING argument is not a quoted literal"),
                    }
                }
                b'T' => {
                    let n = i32::from_le_bytes(self.le()?);
                    if n < 0 {
                        return self.bad("BINSTRING with a negative length");
                    }
                    let b = self.take(n as u64)?.to_vec();
                    self.push(Node::Bytes(b))?
                }
                b'U' => {
                    let n = self.u8()? as u64;
                    let b = self.take(n)?.to_vec();
                    self.push(Node::Bytes(b))?
                }
                b'V' => {
                    let l = self.line()?.to_vec();
                    self.push(Node::Str(raw_unicode_escape(&l)))?
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.u32()?,
                        0x8c => self.u8()? as u64,
                        _ => self.u64()?,
                    };
                    let b = self.take(n)?;
                    match std::str::from_utf8(b) {
                        Ok(s) => {
                            let s = s.to_string();
                            self.push(Node::Str(s))?
                        }
                        Err(_) => return self.bad("unicode string is not UTF-8"),
                    }
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.u32()?,
                        b'C' => self.u8()? as u64,
                        _ => self.u64()?,
                    };
                    let b = self.take(n)?.to_vec();
                    self.push(Node::Bytes(b))?
                }
                0x97 | 0x98 => {
                    return self
                        .bad("out-of-band buffers (protocol 5 NEXT_BUFFER) are not in a file")
                }
                b']' => self.push(Node::List(Vec::new()))?,
                b')' => self.push(Node::Tuple(Vec::new()))?,
                b'}' => self.push(Node::Dict(Vec::new()))?,
                0x8f => self.push(Node::Set(Vec::new()))?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items))?
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items))?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Node::Tuple(items))?
                }
                b'd' => {
                    let flat = self.pop_mark()?;
                    let d = self.alloc(Node::Dict(Vec::new()));
                    self.set_items(d, flat)?;
                    self.push_id(d)?
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Node::Set(items))?
                }
                b'a' => {
                    let v = self.pop()?;
                    let t = self.top()?;
                    self.append(t, vec![v])?
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    let t = self.top()?;
                    self.append(t, items)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let t = self.top()?;
                    self.set_items(t, vec![k, v])?
                }
                b'u' => {
                    let flat = self.pop_mark()?;
                    let t = self.top()?;
                    self.set_items(t, flat)?
                }
                b'c' => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    let g = self.global(module, name)?;
                    self.push_id(g)?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Some(m), Some(n)) = (self.string_of(module), self.string_of(name)) else {
                        return self.bad("STACK_GLOBAL needs two strings");
                    };
                    let g = self.global(m, n)?;
                    self.push_id(g)?
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    self.object(f, args)?
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    self.object(cls, args)?
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    self.object(cls, args)?
                }
                b'i' => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    let g = self.global(module, name)?;
                    let items = self.pop_mark()?;
                    let args = self.alloc(Node::Tuple(items));
                    self.object(g, args)?
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return self.bad("OBJ without a class");
                    }
                    let cls = items.remove(0);
                    let args = self.alloc(Node::Tuple(items));
                    self.object(cls, args)?
                }
                b'b' => {
                    let state = self.pop()?;
                    let t = self.top()?;
                    // BUILD on a plain container (a dict's __setstate__) changes nothing we read.
                    if let Node::Object { state: s, .. } = &mut self.nodes[t] {
                        *s = Some(state);
                    }
                }
                b'P' => {
                    let s = self.line_str()?;
                    let id = self.alloc(Node::Str(s));
                    self.push(Node::PersId(id))?
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.push(Node::PersId(pid))?
                }
                b'g' => {
                    let s = self.line_str()?;
                    match s.trim().parse::<u64>() {
                        Ok(k) => self.memo_get(k)?,
                        Err(_) => return self.bad("GET argument is not a number"),
                    }
                }
                b'h' => {
                    let k = self.u8()? as u64;
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?
                }
                b'p' => {
                    let s = self.line_str()?;
                    match s.trim().parse::<u64>() {
                        Ok(k) => self.memo_put(k)?,
                        Err(_) => return self.bad("PUT argument is not a number"),
                    }
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?
                }
                0x82..=0x84 => {
                    return self.bad("extension-registry opcodes (EXT1/2/4) are not allowed")
                }
                other => return self.bad(format!("unknown opcode 0x{other:02x}")),
            }
        }
    }

    fn string_of(&self, id: Id) -> Option<String> {
        match &self.nodes[id] {
            Node::Str(s) => Some(s.clone()),
            Node::Bytes(b) => String::from_utf8(b.clone()).ok(),
            _ => None,
        }
    }
}
