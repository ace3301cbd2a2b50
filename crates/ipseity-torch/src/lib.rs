//! Reads the tensors of a PyTorch `state_dict` saved by `torch.save`, in the
//! zip format (PyTorch 1.6 and later) or the legacy one before it, without
//! running any of its pickle code.
//!
//! Pickle is a program for a stack machine whose `GLOBAL` and `REDUCE`
//! opcodes import and call arbitrary Python. We interpret only the opcodes a
//! state_dict needs and resolve a fixed allow-list of global names to tags
//! (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, a few
//! storage types); anything else is an error naming what was refused. Every
//! count, size and depth is capped by [`Limits`], and every read is
//! bounds-checked, so hostile bytes yield a [`TorchError`], never a panic or
//! an allocation larger than the file justifies.
//!
//! Zip layout: `<name>/data.pkl` holds the object, whose persistent ids name
//! storages stored raw in `<name>/data/<key>` (little-endian unless
//! `<name>/byteorder` says otherwise). Legacy layout: five pickles back to
//! back (magic number, protocol version, system info, the object, the list
//! of storage keys), then each storage in that order as a little-endian `i64`
//! element count followed by its raw little-endian elements.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod pickle;
mod zip;

use std::rc::Rc;

use pickle::{StorageRef, TensorRef, Value};

/// The first pickle of every legacy file.
const MAGIC: i128 = 0x1950a86a20f9469cfc6c;
/// The only legacy protocol version written since 2017.
const PROTOCOL: i128 = 1001;

/// Why a file could not be read as a state_dict.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TorchError {
    /// The data ends inside a value.
    #[error("truncated at byte {offset}")]
    Truncated {
        /// Where more bytes were needed.
        offset: usize,
    },
    /// The bytes do not form what they claim.
    #[error("malformed at byte {offset}: {what}")]
    Malformed {
        /// Where the problem was seen.
        offset: usize,
        /// What was wrong.
        what: String,
    },
    /// An opcode outside the allow-list.
    #[error("pickle opcode {opcode:#04x} at byte {offset} is not allowed")]
    UnknownOpcode {
        /// Where it was.
        offset: usize,
        /// The opcode byte.
        opcode: u8,
    },
    /// A global outside the allow-list: loading it would import code.
    #[error("pickle global {module}.{name} is not allowed")]
    ForbiddenGlobal {
        /// The module named.
        module: String,
        /// The attribute named.
        name: String,
    },
    /// A cap of [`Limits`] was reached.
    #[error("limit exceeded: {0}")]
    Limit(&'static str),
    /// Valid PyTorch data that this reader does not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Caps on what one file may make us do.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Opcodes executed per pickle.
    pub max_ops: usize,
    /// Nesting of containers and marks.
    pub max_depth: usize,
    /// Values on the stack.
    pub max_stack: usize,
    /// Memo entries.
    pub max_memo: usize,
    /// Items in one container.
    pub max_items: usize,
    /// Bytes in one string or global name.
    pub max_str: usize,
    /// Storages (and so tensors with distinct data).
    pub max_tensors: usize,
    /// Tensor rank.
    pub max_dims: usize,
    /// Entries in a zip-format file.
    pub max_entries: usize,
    /// Elements materialised over all tensors (strides of zero can make a
    /// view larger than its storage, so this is not implied by the file size).
    pub max_elements: usize,
}

impl Default for Limits {
    /// Roomy for vision models of up to ~100 M parameters.
    fn default() -> Self {
        Self {
            max_ops: 1 << 22,
            max_depth: 32,
            max_stack: 1 << 16,
            max_memo: 1 << 18,
            max_items: 1 << 18,
            max_str: 1 << 12,
            max_tensors: 1 << 14,
            max_dims: 8,
            max_entries: 1 << 16,
            max_elements: 1 << 27,
        }
    }
}

/// Element types this reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// `torch.float32`.
    F32,
    /// `torch.float64`.
    F64,
    /// `torch.int64` (BatchNorm's `num_batches_tracked`).
    I64,
    /// `torch.int32`.
    I32,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }
}

/// A tensor's values, densely in row-major order of its shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// Single-precision floats.
    F32(Vec<f32>),
    /// Double-precision floats.
    F64(Vec<f64>),
    /// 64-bit integers.
    I64(Vec<i64>),
    /// 32-bit integers.
    I32(Vec<i32>),
}

/// One named tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Data,
}

impl Tensor {
    /// The values as `f32` when the tensor holds floats (doubles are narrowed).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        match &self.data {
            Data::F32(v) => Some(v.clone()),
            Data::F64(v) => Some(v.iter().map(|&x| x as f32).collect()),
            Data::I64(_) | Data::I32(_) => None,
        }
    }
}

/// A state_dict: tensors by name, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateDict {
    /// `(name, tensor)` pairs.
    pub entries: Vec<(String, Tensor)>,
}

impl StateDict {
    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

/// Reads a `torch.save` file of a state_dict (zip or legacy format) with default limits.
pub fn read_state_dict(bytes: &[u8]) -> Result<StateDict, TorchError> {
    read_state_dict_with(bytes, &Limits::default())
}

/// [`read_state_dict`] with explicit limits.
pub fn read_state_dict_with(bytes: &[u8], limits: &Limits) -> Result<StateDict, TorchError> {
    if bytes.starts_with(b"PK\x03\x04") {
        return read_zip(bytes, limits);
    }
    let mut pos = 0usize;
    let mut storages = Vec::new();
    let next = |pos: &mut usize, persistent: bool, storages: &mut Vec<Rc<StorageRef>>| {
        let rest = bytes.get(*pos..).unwrap_or_default();
        let u = pickle::unpickle(rest, *pos, limits, persistent, storages)?;
        *pos += u.consumed;
        Ok::<Value, TorchError>(u.value)
    };
    match next(&mut pos, false, &mut storages)? {
        Value::Int(MAGIC) => {}
        _ => return Err(malformed(0, "not a legacy PyTorch file (bad magic number)")),
    }
    match next(&mut pos, false, &mut storages)? {
        Value::Int(PROTOCOL) => {}
        _ => {
            return Err(TorchError::Unsupported(
                "legacy protocol version other than 1001".into(),
            ))
        }
    }
    let info_at = pos;
    let Value::Dict(info) = next(&mut pos, false, &mut storages)? else {
        return Err(malformed(info_at, "system info is not a dict"));
    };
    let little = info.items.iter().find_map(|(k, v)| match (k, v) {
        (Value::Str(k), Value::Bool(b)) if &**k == "little_endian" => Some(*b),
        _ => None,
    });
    if little == Some(false) {
        return Err(TorchError::Unsupported("big-endian files".into()));
    }
    let obj_at = pos;
    let obj = next(&mut pos, true, &mut storages)?;
    let keys_at = pos;
    let Value::List(keys) = next(&mut pos, false, &mut storages)? else {
        return Err(malformed(keys_at, "storage key list is not a list"));
    };

    // Raw storages, in the order the key list gives.
    let mut raw: Vec<(Rc<StorageRef>, &[u8])> = Vec::with_capacity(storages.len());
    for key in &keys.items {
        let Value::Str(key) = key else {
            return Err(malformed(pos, "storage key is not a string"));
        };
        let storage = storages
            .iter()
            .find(|s| *s.key == **key)
            .ok_or_else(|| malformed(pos, format!("storage {key} is not used by any tensor")))?
            .clone();
        if raw.iter().any(|(s, _)| Rc::ptr_eq(s, &storage)) {
            return Err(malformed(pos, format!("storage {key} stored twice")));
        }
        let count_bytes = bytes
            .get(pos..pos.saturating_add(8))
            .ok_or(TorchError::Truncated { offset: pos })?;
        let mut le = [0u8; 8];
        le.copy_from_slice(count_bytes);
        let count = i64::from_le_bytes(le);
        if usize::try_from(count).ok() != Some(storage.numel) {
            return Err(malformed(
                pos,
                format!(
                    "storage {key} holds {count} elements, {} declared",
                    storage.numel
                ),
            ));
        }
        pos += 8;
        let len = storage
            .numel
            .checked_mul(storage.dtype.size())
            .ok_or(TorchError::Limit("storage size"))?;
        let data = bytes
            .get(pos..pos.saturating_add(len))
            .filter(|d| d.len() == len)
            .ok_or(TorchError::Truncated { offset: pos })?;
        pos += len;
        raw.push((storage, data));
    }
    if let Some(missing) = storages
        .iter()
        .find(|s| !raw.iter().any(|(r, _)| Rc::ptr_eq(r, s)))
    {
        return Err(malformed(
            pos,
            format!("storage {} has no data", missing.key),
        ));
    }
    if pos != bytes.len() {
        return Err(malformed(pos, "trailing bytes after the last storage"));
    }

    collect(&obj, &raw, obj_at, limits)
}

/// The state_dict in `obj`, with each tensor's data copied out of `raw`.
fn collect(
    obj: &Value,
    raw: &[(Rc<StorageRef>, &[u8])],
    obj_at: usize,
    limits: &Limits,
) -> Result<StateDict, TorchError> {
    let Value::Dict(dict) = obj else {
        return Err(malformed(obj_at, "the saved object is not a dict"));
    };
    let mut budget = limits.max_elements;
    let mut entries = Vec::with_capacity(dict.items.len());
    for (k, v) in &dict.items {
        let (Value::Str(name), Value::Tensor(t)) = (k, v) else {
            return Err(TorchError::Unsupported(
                "state_dict entries other than name -> tensor".into(),
            ));
        };
        let data = raw
            .iter()
            .find(|(s, _)| Rc::ptr_eq(s, &t.storage))
            .map(|(_, d)| *d)
            .ok_or_else(|| malformed(obj_at, format!("tensor {name} has no storage")))?;
        let tensor = materialise(t, data, &mut budget)?;
        entries.push((name.to_string(), tensor));
    }
    Ok(StateDict { entries })
}

/// A zip-format file: the object from `*/data.pkl`, each storage from `*/data/<key>`.
fn read_zip(bytes: &[u8], limits: &Limits) -> Result<StateDict, TorchError> {
    let entries = zip::entries(bytes, limits.max_entries)?;
    let pkl = entries
        .iter()
        .find(|e| e.name.ends_with("/data.pkl") && e.name.matches('/').count() == 1)
        .ok_or_else(|| malformed(0, "zip archive without <name>/data.pkl"))?;
    let prefix = pkl.name.trim_end_matches("data.pkl");
    let entry = |name: &str| entries.iter().find(|e| e.name == name).map(|e| e.data);
    if let Some(order) = entry(&format!("{prefix}byteorder")) {
        if order != b"little" {
            return Err(TorchError::Unsupported("big-endian files".into()));
        }
    }
    let mut storages = Vec::new();
    let u = pickle::unpickle(pkl.data, 0, limits, true, &mut storages)?;
    if u.consumed != pkl.data.len() {
        return Err(malformed(u.consumed, "bytes after the pickle's STOP"));
    }
    let mut raw = Vec::with_capacity(storages.len());
    for s in &storages {
        let name = format!("{prefix}data/{}", s.key);
        let data = entry(&name)
            .ok_or_else(|| malformed(0, format!("storage {name} missing from the archive")))?;
        if Some(data.len()) != s.numel.checked_mul(s.dtype.size()) {
            return Err(malformed(
                0,
                format!(
                    "storage {name} holds {} bytes, {} elements declared",
                    data.len(),
                    s.numel
                ),
            ));
        }
        raw.push((s.clone(), data));
    }
    collect(&u.value, &raw, 0, limits)
}

fn malformed(offset: usize, what: impl Into<String>) -> TorchError {
    TorchError::Malformed {
        offset,
        what: what.into(),
    }
}

/// Copies a strided view out of its storage's bytes. The pickle stage checked
/// that every addressed element lies inside the storage, and the storage
/// stage that `data` holds exactly `numel` elements; indexing is still
/// checked so a bug here is an error, not a panic.
fn materialise(t: &TensorRef, data: &[u8], budget: &mut usize) -> Result<Tensor, TorchError> {
    let numel = t
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= *budget)
        .ok_or(TorchError::Limit("tensor elements"))?;
    *budget -= numel;
    let size = t.storage.dtype.size();
    let mut offsets = Vec::with_capacity(numel);
    let mut idx = vec![0usize; t.shape.len()];
    for _ in 0..numel {
        let off = idx
            .iter()
            .zip(&t.stride)
            .fold(t.offset, |a, (&i, &s)| a + i * s);
        offsets.push(off);
        // Odometer increment, last dimension fastest.
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < t.shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    let at = |off: usize| -> Result<&[u8], TorchError> {
        off.checked_mul(size)
            .and_then(|b| data.get(b..b.checked_add(size)?))
            .ok_or(TorchError::Malformed {
                offset: 0,
                what: "tensor element outside its storage".into(),
            })
    };
    fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        a
    }
    let data = match t.storage.dtype {
        DType::F32 => Data::F32(
            offsets
                .iter()
                .map(|&o| at(o).map(|b| f32::from_le_bytes(arr(b))))
                .collect::<Result<_, _>>()?,
        ),
        DType::F64 => Data::F64(
            offsets
                .iter()
                .map(|&o| at(o).map(|b| f64::from_le_bytes(arr(b))))
                .collect::<Result<_, _>>()?,
        ),
        DType::I64 => Data::I64(
            offsets
                .iter()
                .map(|&o| at(o).map(|b| i64::from_le_bytes(arr(b))))
                .collect::<Result<_, _>>()?,
        ),
        DType::I32 => Data::I32(
            offsets
                .iter()
                .map(|&o| at(o).map(|b| i32::from_le_bytes(arr(b))))
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(Tensor {
        shape: t.shape.clone(),
        data,
    })
}
