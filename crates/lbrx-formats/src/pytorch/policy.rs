//! Which globals a checkpoint pickle may name: the one table, modelled on torch's
//! `torch/_weights_only_unpickler.py` allowlist. Nothing named here is ever imported or called; the class only
//! decides whether the reader goes on (and how it reads the value) or refuses the file.

/// What a global is to the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalClass {
    /// A torch tensor or parameter rebuild function.
    Rebuild(Rebuild),
    /// A typed or untyped storage class (its name gives the element type).
    Storage,
    /// A torch dtype object (`torch.float8_e4m3fn`).
    TorchDType,
    /// A container or plain value type torch's weights-only loader allows (`OrderedDict`, `torch.Size`, ...).
    Container,
    /// A module object of a TorchScript archive (`__torch__.*`), read as its attributes.
    ScriptObject,
    /// A class the reader does not know: the value becomes an opaque node, skipped with a warning.
    Unknown,
    /// A global that can run code (`os.system`, `builtins.eval`, `subprocess.*` ...): the file is refused.
    Dangerous,
}

/// The torch rebuild functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// `_rebuild_tensor(storage, offset, size, stride)`.
    Tensor,
    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
    TensorV2,
    /// `_rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype[, metadata])`.
    TensorV3,
    /// `_rebuild_parameter(data, requires_grad, hooks)` and `_rebuild_parameter_with_state`.
    Parameter,
    /// `_rebuild_from_type_v2(func, new_type, args, state)`: a tensor subclass.
    FromTypeV2,
    /// A rebuild lbrx does not read (quantized, sparse, nested, meta tensors): a clear error.
    Unsupported,
}

/// `(module, name)` pairs and what they are. A `*` name matches every name of the module.
static TABLE: &[(&str, &str, GlobalClass)] = {
    use self::Rebuild as R;
    use GlobalClass::{Container, Dangerous, Storage};
    &[
        (
            "torch._utils",
            "_rebuild_tensor",
            GlobalClass::Rebuild(R::Tensor),
        ),
        (
            "torch._utils",
            "_rebuild_tensor_v2",
            GlobalClass::Rebuild(R::TensorV2),
        ),
        (
            "torch._utils",
            "_rebuild_tensor_v3",
            GlobalClass::Rebuild(R::TensorV3),
        ),
        (
            "torch._utils",
            "_rebuild_parameter",
            GlobalClass::Rebuild(R::Parameter),
        ),
        (
            "torch._utils",
            "_rebuild_parameter_with_state",
            GlobalClass::Rebuild(R::Parameter),
        ),
        (
            "torch._tensor",
            "_rebuild_from_type_v2",
            GlobalClass::Rebuild(R::FromTypeV2),
        ),
        (
            "torch._utils",
            "_rebuild_qtensor",
            GlobalClass::Rebuild(R::Unsupported),
        ),
        (
            "torch._utils",
            "_rebuild_sparse_tensor",
            GlobalClass::Rebuild(R::Unsupported),
        ),
        (
            "torch._utils",
            "_rebuild_nested_tensor",
            GlobalClass::Rebuild(R::Unsupported),
        ),
        (
            "torch._utils",
            "_rebuild_meta_tensor_no_storage",
            GlobalClass::Rebuild(R::Unsupported),
        ),
        (
            "torch._utils",
            "_rebuild_wrapper_subclass",
            GlobalClass::Rebuild(R::Unsupported),
        ),
        (
            "torch._utils",
            "_rebuild_device_tensor_from_numpy",
            GlobalClass::Rebuild(R::Unsupported),
        ),
        (
            "torch._utils",
            "_rebuild_xla_tensor",
            GlobalClass::Rebuild(R::Unsupported),
        ),
        (
            "torch._utils",
            "_rebuild_mps_tensor",
            GlobalClass::Rebuild(R::Unsupported),
        ),
        ("torch.storage", "UntypedStorage", Storage),
        ("torch.storage", "TypedStorage", Storage),
        ("torch.storage", "_load_from_bytes", Dangerous),
        ("torch", "Size", Container),
        ("torch", "device", Container),
        ("torch.nn.parameter", "Parameter", Container),
        ("collections", "OrderedDict", Container),
        ("collections", "defaultdict", Container),
        ("collections", "Counter", Container),
        ("builtins", "set", Container),
        ("builtins", "frozenset", Container),
        ("builtins", "bytearray", Container),
        ("builtins", "list", Container),
        ("builtins", "dict", Container),
        ("builtins", "tuple", Container),
        ("builtins", "slice", Container),
        ("builtins", "range", Container),
        ("builtins", "complex", Container),
        ("builtins", "int", Container),
        ("builtins", "float", Container),
        ("builtins", "bool", Container),
        ("builtins", "str", Container),
        ("builtins", "bytes", Container),
        ("builtins", "object", Container),
        ("__builtin__", "set", Container),
        ("_codecs", "encode", Container),
        ("torch.jit._pickle", "build_intlist", Container),
        ("torch.jit._pickle", "build_doublelist", Container),
        ("torch.jit._pickle", "build_boollist", Container),
        ("torch.jit._pickle", "build_tensorlist", Container),
        ("torch.jit._pickle", "build_tensor_from_id", Container),
        ("torch.jit._pickle", "restore_type_tag", Container),
        // Every other builtin can reach code (eval, exec, getattr, __import__, open, compile ...).
        ("builtins", "*", Dangerous),
        ("__builtin__", "*", Dangerous),
        ("__builtins__", "*", Dangerous),
    ]
};

/// Modules whose every global can run code or touch the system; a name under them (`os.path`) counts too.
static DANGEROUS_MODULES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "subprocess",
    "sys",
    "shutil",
    "socket",
    "runpy",
    "importlib",
    "pickle",
    "_pickle",
    "marshal",
    "ctypes",
    "pty",
    "code",
    "codeop",
    "commands",
    "webbrowser",
    "multiprocessing",
    "threading",
    "signal",
    "asyncio",
    "pdb",
    "bdb",
    "timeit",
    "operator",
    "_operator",
    "functools",
    "types",
    "inspect",
    "pydoc",
    "platform",
    "tempfile",
    "io",
    "_io",
    "pathlib",
    "glob",
    "http",
    "urllib",
    "requests",
    "ftplib",
    "smtplib",
    "telnetlib",
    "sqlite3",
    "zipimport",
    "pkgutil",
    "setuptools",
    "pip",
    "distutils",
    "dill",
    "cloudpickle",
    "joblib",
    "yaml",
    "numpy.testing",
    "torch.hub",
    "torch.jit",
    "torch.package",
    "torch.serialization",
    "torch._dynamo",
    "torch._inductor",
    "torch.utils.cpp_extension",
    "torch.cuda",
    "torch.ops",
    "torch._ops",
    "torch.classes",
    "torch._classes",
];

/// Storage classes (`torch.FloatStorage` ...), typed by the element they hold.
pub static STORAGE_CLASSES: &[(&str, lbrx_core::DType)] = {
    use lbrx_core::DType as D;
    &[
        ("DoubleStorage", D::F64),
        ("FloatStorage", D::F32),
        ("HalfStorage", D::F16),
        ("BFloat16Storage", D::BF16),
        ("LongStorage", D::I64),
        ("IntStorage", D::I32),
        ("ShortStorage", D::I16),
        ("CharStorage", D::I8),
        ("ByteStorage", D::U8),
        ("BoolStorage", D::Bool),
        ("ComplexFloatStorage", D::C64),
        ("UntypedStorage", D::U8),
        ("TypedStorage", D::U8),
    ]
};

/// Storage classes torch defines that hold what lbrx has no dtype for (quantized ints, complex128).
static UNSUPPORTED_STORAGES: &[&str] = &[
    "ComplexDoubleStorage",
    "QInt8Storage",
    "QUInt8Storage",
    "QInt32Storage",
    "QUInt4x2Storage",
    "QUInt2x4Storage",
];

/// Classifies `module.name`.
pub fn classify(module: &str, name: &str) -> GlobalClass {
    if let Some((_, _, c)) = TABLE
        .iter()
        .find(|(m, n, _)| *m == module && (*n == name || *n == "*"))
    {
        return *c;
    }
    let under =
        |m: &str| module == m || module.starts_with(m) && module[m.len()..].starts_with('.');
    if DANGEROUS_MODULES.iter().any(|m| under(m)) {
        return GlobalClass::Dangerous;
    }
    if module == "torch" || module == "torch.cuda" {
        if STORAGE_CLASSES.iter().any(|(n, _)| *n == name) || UNSUPPORTED_STORAGES.contains(&name) {
            return GlobalClass::Storage;
        }
        if lbrx_core::dtype::torch_dtype(name).is_some()
            || TORCH_DTYPES_WITHOUT_LBRX.contains(&name)
        {
            return GlobalClass::TorchDType;
        }
    }
    if module == "__torch__" || module.starts_with("__torch__.") {
        return GlobalClass::ScriptObject;
    }
    GlobalClass::Unknown
}

/// torch dtypes that lbrx's dtype table has no row for (read as a clear "unsupported dtype" error).
static TORCH_DTYPES_WITHOUT_LBRX: &[&str] = &[
    "complex128",
    "complex32",
    "qint8",
    "quint8",
    "qint32",
    "quint4x2",
    "quint2x4",
    "float4_e2m1fn_x2",
    "uint1",
    "uint2",
    "uint3",
    "uint4",
    "uint5",
    "uint6",
    "uint7",
    "int1",
    "int2",
    "int3",
    "int4",
    "int5",
    "int6",
    "int7",
    "bits8",
    "bits16",
    "bits1x8",
    "bits2x4",
    "bits4x2",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify("os", "system"), GlobalClass::Dangerous);
        assert_eq!(classify("os.path", "join"), GlobalClass::Dangerous);
        assert_eq!(classify("posix", "system"), GlobalClass::Dangerous);
        assert_eq!(classify("builtins", "eval"), GlobalClass::Dangerous);
        assert_eq!(classify("builtins", "getattr"), GlobalClass::Dangerous);
        assert_eq!(classify("builtins", "set"), GlobalClass::Container);
        assert_eq!(classify("subprocess", "Popen"), GlobalClass::Dangerous);
        assert_eq!(classify("torch", "FloatStorage"), GlobalClass::Storage);
        assert_eq!(classify("torch", "float8_e4m3fn"), GlobalClass::TorchDType);
        assert_eq!(classify("torch", "bfloat16"), GlobalClass::TorchDType);
        assert_eq!(classify("osmosis", "thing"), GlobalClass::Unknown);
        assert_eq!(
            classify("numpy.core.multiarray", "scalar"),
            GlobalClass::Unknown
        );
        assert_eq!(classify("__torch__.a.b", "M"), GlobalClass::ScriptObject);
        assert_eq!(
            classify("torch._utils", "_rebuild_tensor_v2"),
            GlobalClass::Rebuild(Rebuild::TensorV2)
        );
    }
}
