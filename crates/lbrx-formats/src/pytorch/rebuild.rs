//! From a parsed pickle to named tensors: the torch rebuild calls read as data (storage, offset, size,
//! stride, dtype), and the object tree flattened to dotted names as flattening the loaded object through its
//! dicts and lists gives them.

use super::pickle::{Id, Node, Pickle};
use super::policy::{GlobalClass, Rebuild, STORAGE_CLASSES};
use lbrx_core::DType;
use std::collections::BTreeMap;

/// A storage a persistent id names: `('storage', storage_type, key, location, numel[, view])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// The storage key (zip member `data/KEY`, or a legacy record key).
    pub key: String,
    /// Element type of the storage class (`U8` for untyped storages).
    pub dtype: DType,
    /// Elements in the storage (bytes for untyped storages).
    pub numel: u64,
    /// Legacy views into a larger storage: (root key, element offset, elements).
    pub view: Option<(String, u64, u64)>,
}

/// A tensor as its rebuild call describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// Full dotted name.
    pub name: String,
    /// The storage.
    pub storage: StorageRef,
    /// The tensor's element type.
    pub dtype: DType,
    /// Offset of the first element in the storage, in elements of `dtype`.
    pub offset: u64,
    /// Shape.
    pub shape: Vec<u64>,
    /// Strides, in elements.
    pub stride: Vec<u64>,
}

/// How the object tree is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// A `torch.save`d object: dict keys and list indices joined with dots.
    Plain,
    /// A TorchScript module tree: parameters and buffers of each module (as `state_dict()` lists them).
    Script,
}

/// Parameters and buffers a TorchScript class declares (`__parameters__`, `__buffers__` in `code/`), by
/// qualified class name.
pub type ScriptClasses = BTreeMap<String, (Vec<String>, Vec<String>)>;

/// The outcome of flattening one pickle.
#[derive(Debug, Default)]
pub struct Flattened {
    /// Tensors in the order flattening meets them.
    pub tensors: Vec<TensorRef>,
    /// What was skipped, for people.
    pub warnings: Vec<String>,
}

/// Caps on walking the object tree (a pickle can describe a DAG with exponentially many paths, or a cycle).
const MAX_DEPTH: usize = 512;
const MAX_VISITS: u64 = 10_000_000;
const MAX_TENSORS: usize = 1_000_000;

struct Walker<'a> {
    p: &'a Pickle,
    naming: Naming,
    classes: &'a ScriptClasses,
    out: Flattened,
    visits: u64,
    skipped: BTreeMap<String, (u64, String)>,
    /// Nodes already walked that hold no tensor and nothing skipped: walked once however often they are shared.
    barren: std::collections::HashSet<Id>,
    /// Objects skipped so far.
    skips: u64,
}

/// Flattens the value `root` of `p`. Errors are plain sentences; the caller adds the file.
pub fn flatten(
    p: &Pickle,
    root: Id,
    prefix: &str,
    naming: Naming,
    classes: &ScriptClasses,
) -> Result<Flattened, String> {
    let mut w = Walker {
        p,
        naming,
        classes,
        out: Flattened::default(),
        visits: 0,
        skipped: BTreeMap::new(),
        barren: std::collections::HashSet::new(),
        skips: 0,
    };
    w.walk(root, prefix, 0)?;
    for (class, (n, first)) in std::mem::take(&mut w.skipped) {
        let more = if n > 1 {
            format!(" (and {} more)", n - 1)
        } else {
            String::new()
        };
        let at = if first.is_empty() {
            "the top level".into()
        } else {
            format!("'{first}'")
        };
        w.out.warnings.push(format!(
            "skipped an object of unknown class {class} at {at}{more}: not a tensor container lbrx reads"
        ));
    }
    Ok(w.out)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

impl Walker<'_> {
    fn class_of(&self, callable: Id) -> Option<(&str, &str, GlobalClass)> {
        match self.p.node(callable) {
            Node::Global {
                module,
                name,
                class,
            } => Some((module, name, *class)),
            _ => None,
        }
    }

    /// Dict-like items of a node: a dict, an `OrderedDict(...)`/`defaultdict` object (its constructor pairs,
    /// set items and dict state).
    fn dict_items(&self, id: Id) -> Option<Vec<(Id, Id)>> {
        match self.p.node(id) {
            Node::Dict(items) => Some(items.clone()),
            Node::Object {
                callable,
                args,
                items,
                state,
                ..
            } => {
                let (m, n, _) = self.class_of(*callable)?;
                if !(m == "collections" && matches!(n, "OrderedDict" | "defaultdict" | "Counter")
                    || m == "builtins" && n == "dict")
                {
                    return None;
                }
                let mut out = Vec::new();
                // OrderedDict([[k, v], ...]) or OrderedDict({...}); defaultdict's first arg is the factory.
                if let Some(a) = self.p.seq(*args) {
                    let first = if n == "defaultdict" {
                        a.get(1)
                    } else {
                        a.first()
                    };
                    if let Some(&init) = first {
                        if let Some(d) = self.dict_items(init) {
                            out.extend(d);
                        } else if let Some(pairs) = self.p.seq(init) {
                            for &pair in pairs {
                                if let Some([k, v]) =
                                    self.p.seq(pair).map(|s| s.to_vec()).as_deref()
                                {
                                    out.push((*k, *v));
                                }
                            }
                        }
                    }
                }
                out.extend(items.iter().copied());
                if let Some(s) = state.and_then(|s| self.dict_items(s)) {
                    out.extend(s);
                }
                Some(out)
            }
            _ => None,
        }
    }

    fn key_text(&self, k: Id) -> Option<String> {
        match self.p.node(k) {
            Node::Str(s) => Some(s.clone()),
            Node::Bytes(b) => String::from_utf8(b.clone()).ok(),
            Node::Int(i) => Some(i.to_string()),
            Node::Bool(b) => Some(if *b { "True" } else { "False" }.into()),
            Node::None => Some("None".into()),
            _ => None,
        }
    }

    fn walk(&mut self, id: Id, name: &str, depth: usize) -> Result<(), String> {
        if self.barren.contains(&id) {
            return Ok(());
        }
        let before = (self.out.tensors.len(), self.skips);
        self.walk_node(id, name, depth)?;
        let after = (self.out.tensors.len(), self.skips);
        if before == after {
            self.barren.insert(id);
        }
        Ok(())
    }

    fn walk_node(&mut self, id: Id, name: &str, depth: usize) -> Result<(), String> {
        self.visits += 1;
        if self.visits > MAX_VISITS {
            return Err(format!(
                "the object tree has more than {MAX_VISITS} references (a pickle that shares one object \
                 along exponentially many paths); refusing it"
            ));
        }
        if depth > MAX_DEPTH {
            return Err(format!(
                "objects nested deeper than {MAX_DEPTH} levels at '{name}' (or a cycle)"
            ));
        }
        if let Some(items) = self.dict_items(id) {
            for (k, v) in items {
                let Some(key) = self.key_text(k) else {
                    continue;
                };
                self.walk(v, &join(name, &key), depth + 1)?;
            }
            return Ok(());
        }
        match self.p.node(id) {
            Node::List(items) | Node::Tuple(items) => {
                for (i, &v) in items.clone().iter().enumerate() {
                    self.walk(v, &join(name, &i.to_string()), depth + 1)?;
                }
                Ok(())
            }
            Node::Object { callable, .. } => {
                let callable = *callable;
                let class = self
                    .class_of(callable)
                    .map(|(m, n, c)| (m.to_owned(), n.to_owned(), c));
                match class {
                    Some((_, _, GlobalClass::Rebuild(_))) => {
                        if let Some(t) = self.tensor(id, name)? {
                            if self.out.tensors.len() >= MAX_TENSORS {
                                return Err(format!("more than {MAX_TENSORS} tensors"));
                            }
                            self.out.tensors.push(t);
                        }
                        Ok(())
                    }
                    Some((m, n, GlobalClass::ScriptObject)) if self.naming == Naming::Script => {
                        let qual = format!("{m}.{n}");
                        self.script_object(id, &qual, name, depth)
                    }
                    Some((m, n, GlobalClass::Container)) => {
                        // torch.jit's build_*list(list) and Parameter(data) hold values worth walking.
                        if m == "torch.jit._pickle"
                            || (m == "torch.nn.parameter" && n == "Parameter")
                        {
                            if let Some(&first) =
                                self.p.seq(self.args_of(id)).and_then(|a| a.first())
                            {
                                return self.walk(first, name, depth + 1);
                            }
                        }
                        Ok(())
                    }
                    Some(_) if self.module_state(id, name, depth)? => Ok(()),
                    Some((m, n, _)) => {
                        let class = format!("{m}.{n}");
                        let e = self.skipped.entry(class).or_insert((0, name.to_string()));
                        e.0 += 1;
                        self.skips += 1;
                        Ok(())
                    }
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// A pickled `nn.Module` (`torch.save(model)`): its `__dict__` state holds `_parameters`, `_buffers` and
    /// `_modules`; read as `state_dict()` lists them (parameters, persistent buffers, then submodules), with
    /// nothing called. `false` when the object is not a module.
    fn module_state(&mut self, id: Id, name: &str, depth: usize) -> Result<bool, String> {
        let Node::Object {
            state: Some(state), ..
        } = self.p.node(id)
        else {
            return Ok(false);
        };
        let Some(attrs) = self.dict_items(*state) else {
            return Ok(false);
        };
        let attr = |key: &str| {
            attrs
                .iter()
                .find(|&&(k, _)| self.p.str(k) == Some(key))
                .map(|&(_, v)| v)
        };
        let (Some(params), Some(modules)) = (attr("_parameters"), attr("_modules")) else {
            return Ok(false);
        };
        let entries = |id: Option<Id>| -> Vec<(String, Id)> {
            id.and_then(|d| self.dict_items(d))
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| Some((self.key_text(k)?, v)))
                .collect()
        };
        // `_non_persistent_buffers_set`: set([...]) or a set literal of names
        let mut transient = Vec::new();
        if let Some(set) = attr("_non_persistent_buffers_set") {
            let items = match self.p.node(set) {
                Node::Set(v) => v.clone(),
                Node::Object { args, .. } => self
                    .p
                    .seq(*args)
                    .and_then(|a| a.first())
                    .and_then(|&l| self.p.seq(l))
                    .map(<[Id]>::to_vec)
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            transient = items.iter().filter_map(|&k| self.key_text(k)).collect();
        }
        let (params, buffers, modules) = (
            entries(Some(params)),
            entries(attr("_buffers")),
            entries(Some(modules)),
        );
        for (k, v) in params {
            self.walk(v, &join(name, &k), depth + 1)?;
        }
        for (k, v) in buffers {
            if !transient.contains(&k) {
                self.walk(v, &join(name, &k), depth + 1)?;
            }
        }
        for (k, v) in modules {
            self.walk(v, &join(name, &k), depth + 1)?;
        }
        Ok(true)
    }

    fn args_of(&self, id: Id) -> Id {
        match self.p.node(id) {
            Node::Object { args, .. } => *args,
            _ => id,
        }
    }

    /// A TorchScript module: its declared parameters, then buffers, then its submodules, as `state_dict()`.
    fn script_object(
        &mut self,
        id: Id,
        qual: &str,
        name: &str,
        depth: usize,
    ) -> Result<(), String> {
        let Node::Object { state, .. } = self.p.node(id) else {
            return Ok(());
        };
        let Some(attrs) = state.and_then(|s| self.dict_items(s)) else {
            return Ok(());
        };
        let named: Vec<(String, Id)> = attrs
            .iter()
            .filter_map(|&(k, v)| Some((self.key_text(k)?, v)))
            .collect();
        match self.classes.get(qual).cloned() {
            Some((params, buffers)) => {
                for wanted in [&params, &buffers] {
                    for (k, v) in &named {
                        if wanted.contains(k) {
                            self.walk(*v, &join(name, k), depth + 1)?;
                        }
                    }
                }
                for (k, v) in &named {
                    if params.contains(k) || buffers.contains(k) {
                        continue;
                    }
                    if let Node::Object { callable, .. } = self.p.node(*v) {
                        if let Some((m, n, GlobalClass::ScriptObject)) = self.class_of(*callable) {
                            let q = format!("{m}.{n}");
                            if self.classes.contains_key(&q) {
                                self.script_object(*v, &q, &join(name, k), depth + 1)?;
                            }
                        }
                    }
                }
                Ok(())
            }
            // No declaration found (stripped code/): every tensor attribute counts.
            None => {
                for (k, v) in named {
                    self.walk(v, &join(name, &k), depth + 1)?;
                }
                Ok(())
            }
        }
    }

    fn int_at(&self, args: &[Id], i: usize, what: &str, name: &str) -> Result<u64, String> {
        let v = args
            .get(i)
            .and_then(|&a| self.p.int(a))
            .ok_or_else(|| format!("tensor '{name}': {what} is not an integer"))?;
        u64::try_from(v).map_err(|_| format!("tensor '{name}': negative {what} {v}"))
    }

    fn ints(&self, id: Option<&Id>, what: &str, name: &str) -> Result<Vec<u64>, String> {
        let mut id = *id.ok_or_else(|| format!("tensor '{name}': no {what}"))?;
        // torch.Size((2, 3)) as an object, or a plain tuple.
        if let Node::Object { args, .. } = self.p.node(id) {
            if let Some(&first) = self.p.seq(*args).and_then(|a| a.first()) {
                id = first;
            }
        }
        let s = self
            .p
            .seq(id)
            .ok_or_else(|| format!("tensor '{name}': {what} is not a tuple"))?;
        s.iter()
            .map(|&e| {
                let v = self
                    .p
                    .int(e)
                    .ok_or_else(|| format!("tensor '{name}': {what} holds a non-integer"))?;
                u64::try_from(v).map_err(|_| format!("tensor '{name}': negative {what} {v}"))
            })
            .collect()
    }

    /// Reads a rebuild call; `None` for calls that make no tensor lbrx lists.
    fn tensor(&self, id: Id, name: &str) -> Result<Option<TensorRef>, String> {
        let Node::Object { callable, args, .. } = self.p.node(id) else {
            return Ok(None);
        };
        let Some((m, n, GlobalClass::Rebuild(kind))) = self.class_of(*callable) else {
            return Ok(None);
        };
        let a = self
            .p
            .seq(*args)
            .ok_or_else(|| format!("tensor '{name}': {m}.{n} arguments are not a tuple"))?
            .to_vec();
        match kind {
            Rebuild::Parameter => match a.first() {
                Some(&data) => self.tensor(data, name),
                None => Err(format!("tensor '{name}': a parameter without data")),
            },
            Rebuild::FromTypeV2 => {
                // (func, new_type, args, state): func(*args) is the tensor.
                let (Some(&func), Some(&inner)) = (a.first(), a.get(2)) else {
                    return Err(format!("tensor '{name}': malformed _rebuild_from_type_v2"));
                };
                let Node::Global { .. } = self.p.node(func) else {
                    return Err(format!("tensor '{name}': _rebuild_from_type_v2 of a non-global"));
                };
                // Re-read as a call of func with those args.
                let args = self
                    .p
                    .seq(inner)
                    .ok_or_else(|| format!("tensor '{name}': _rebuild_from_type_v2 args"))?;
                self.rebuild_call(func, args, name)
            }
            Rebuild::Unsupported => Err(format!(
                "tensor '{name}': {m}.{n} (quantized, sparse, nested or meta tensors) is not supported; \
                 save a dense tensor instead (tensor.dequantize() / .to_dense())"
            )),
            _ => self.rebuild_call(*callable, &a, name),
        }
    }

    fn rebuild_call(&self, func: Id, a: &[Id], name: &str) -> Result<Option<TensorRef>, String> {
        let Some((m, n, GlobalClass::Rebuild(kind))) = self.class_of(func) else {
            return Err(format!("tensor '{name}': rebuilt by an unknown function"));
        };
        if !matches!(
            kind,
            Rebuild::Tensor | Rebuild::TensorV2 | Rebuild::TensorV3
        ) {
            return Err(format!(
                "tensor '{name}': {m}.{n} nested in a tensor rebuild"
            ));
        }
        let storage = self.storage(a.first().copied(), name)?;
        let offset = self.int_at(a, 1, "storage offset", name)?;
        let shape = self.ints(a.get(2), "size", name)?;
        let stride = self.ints(a.get(3), "stride", name)?;
        if shape.len() != stride.len() {
            return Err(format!(
                "tensor '{name}': size has {} dims but stride {}",
                shape.len(),
                stride.len()
            ));
        }
        let dtype = if kind == Rebuild::TensorV3 {
            let d = a
                .get(6)
                .ok_or_else(|| format!("tensor '{name}': _rebuild_tensor_v3 without a dtype"))?;
            match self.p.node(*d) {
                Node::Global {
                    module, name: dn, ..
                } if module == "torch" => lbrx_core::torch_dtype(dn).ok_or_else(|| {
                    format!("tensor '{name}': torch.{dn} has no lbrx dtype (unsupported)")
                })?,
                _ => return Err(format!("tensor '{name}': dtype is not a torch dtype")),
            }
        } else {
            storage.dtype
        };
        Ok(Some(TensorRef {
            name: name.to_string(),
            storage,
            dtype,
            offset,
            shape,
            stride,
        }))
    }

    fn storage(&self, pid: Option<Id>, name: &str) -> Result<StorageRef, String> {
        let bad = |w: &str| format!("tensor '{name}': storage {w}");
        let pid = pid.ok_or_else(|| bad("missing"))?;
        let Node::PersId(t) = self.p.node(pid) else {
            return Err(bad("is not a persistent id"));
        };
        let t = self.p.seq(*t).ok_or_else(|| bad("id is not a tuple"))?;
        if t.first().and_then(|&s| self.p.str(s)) != Some("storage") || t.len() < 5 {
            return Err(bad("id is not ('storage', type, key, location, size)"));
        }
        let dtype = match self.p.node(t[1]) {
            Node::Global { name: cls, .. } => STORAGE_CLASSES
                .iter()
                .find(|(c, _)| c == cls)
                .map(|&(_, d)| d)
                .ok_or_else(|| {
                    bad(&format!(
                        "class {cls} is not supported (quantized or complex128)"
                    ))
                })?,
            // Newer torch passes the dtype itself.
            _ => return Err(bad("type is not a storage class")),
        };
        let key = self
            .p
            .key_str(t[2])
            .ok_or_else(|| bad("key is not a string"))?;
        let numel = self
            .p
            .int(t[4])
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| bad("size is not a non-negative integer"))?;
        let view = match t.get(5).map(|&v| self.p.node(v)) {
            None | Some(Node::None) => None,
            Some(Node::Tuple(v)) if v.len() == 3 => {
                let vk = self.p.key_str(v[0]).ok_or_else(|| bad("view key"))?;
                let off = self.p.int(v[1]).and_then(|x| u64::try_from(x).ok());
                let len = self.p.int(v[2]).and_then(|x| u64::try_from(x).ok());
                match (off, len) {
                    (Some(o), Some(l)) => Some((vk, o, l)),
                    _ => return Err(bad("view offset/size are not integers")),
                }
            }
            Some(_) => return Err(bad("view is not (key, offset, size)")),
        };
        Ok(StorageRef {
            key,
            dtype,
            numel,
            view,
        })
    }
}

impl Pickle {
    /// A storage key: a string, or an integer key written by older torch versions.
    pub fn key_str(&self, id: Id) -> Option<String> {
        match self.node(id) {
            Node::Int(i) => Some(i.to_string()),
            _ => self.str(id).map(str::to_string),
        }
    }
}
