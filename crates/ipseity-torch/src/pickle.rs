//! A pickle interpreter that only builds data. It knows the opcodes a
//! PyTorch state_dict uses and resolves a fixed allow-list of globals to
//! tags; nothing is looked up, imported or called. Every container records
//! its nesting depth so that a hostile file can build neither a structure
//! whose drop would overflow the stack nor one larger than the limits.

use std::collections::HashMap;
use std::rc::Rc;

use crate::{DType, Limits, TorchError};

/// The globals a state_dict may name. Anything else is refused by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    Storage(DType),
}

impl Global {
    fn resolve(module: &str, name: &str) -> Option<Self> {
        Some(match (module, name) {
            ("collections", "OrderedDict") => Self::OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2") => Self::RebuildTensorV2,
            ("torch._utils", "_rebuild_parameter") => Self::RebuildParameter,
            ("torch", "FloatStorage") => Self::Storage(DType::F32),
            ("torch", "DoubleStorage") => Self::Storage(DType::F64),
            ("torch", "LongStorage") => Self::Storage(DType::I64),
            ("torch", "IntStorage") => Self::Storage(DType::I32),
            _ => return None,
        })
    }
}

/// A storage named by a persistent id: its bytes come later in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StorageRef {
    pub dtype: DType,
    pub key: String,
    pub numel: usize,
}

/// A view into a storage, as `_rebuild_tensor_v2` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TensorRef {
    pub storage: Rc<StorageRef>,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

/// Cloning copies one level only: the items are reference-counted.
#[derive(Debug, Clone)]
pub(crate) struct Seq {
    pub items: Vec<Value>,
    depth: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Map {
    pub items: Vec<(Value, Value)>,
    depth: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i128),
    /// A float's value is never needed by a state_dict, only its presence.
    Float,
    Str(Rc<str>),
    Tuple(Rc<Seq>),
    List(Rc<Seq>),
    Dict(Rc<Map>),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    fn depth(&self) -> usize {
        match self {
            Value::Tuple(s) | Value::List(s) => s.depth,
            Value::Dict(m) => m.depth,
            _ => 0,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float => "float",
            Value::Str(_) => "str",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

/// What one pickle produced, and where it ended.
pub(crate) struct Unpickled {
    pub value: Value,
    pub consumed: usize,
}

struct Machine<'a, 'l> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    limits: &'l Limits,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    persistent: bool,
    storages: &'l mut Vec<Rc<StorageRef>>,
}

/// Runs one pickle from the start of `buf` up to its STOP. `base` is the
/// offset of `buf` in the file, for error messages. Storages named by
/// persistent ids are appended to `storages`; `persistent` false makes a
/// persistent id an error (only the state_dict pickle may hold them).
pub(crate) fn unpickle(
    buf: &[u8],
    base: usize,
    limits: &Limits,
    persistent: bool,
    storages: &mut Vec<Rc<StorageRef>>,
) -> Result<Unpickled, TorchError> {
    let mut m = Machine {
        buf,
        pos: 0,
        base,
        limits,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        persistent,
        storages,
    };
    let value = m.run()?;
    Ok(Unpickled {
        value,
        consumed: m.pos,
    })
}

impl Machine<'_, '_> {
    fn at(&self) -> usize {
        self.base + self.pos
    }

    fn malformed(&self, what: impl Into<String>) -> TorchError {
        TorchError::Malformed {
            offset: self.at(),
            what: what.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], TorchError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(TorchError::Truncated { offset: self.at() })?;
        let s = self.buf.get(self.pos..end).ok_or(TorchError::Truncated {
            offset: self.base + self.pos,
        })?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TorchError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, TorchError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, TorchError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn line(&mut self) -> Result<String, TorchError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let max = self.limits.max_str.min(rest.len());
        let n = rest
            .iter()
            .take(max.saturating_add(1))
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.malformed("global name without a newline within the limit"))?;
        let at = self.at();
        let s = std::str::from_utf8(self.take(n)?)
            .map_err(|_| TorchError::Malformed {
                offset: at,
                what: "global name is not UTF-8".into(),
            })?
            .to_owned();
        self.take(1)?;
        Ok(s)
    }

    fn text(&mut self, n: usize) -> Result<Value, TorchError> {
        if n > self.limits.max_str {
            return Err(TorchError::Limit("string length"));
        }
        let at = self.at();
        let bytes = self.take(n)?;
        let s = std::str::from_utf8(bytes).map_err(|_| TorchError::Malformed {
            offset: at,
            what: "string is not UTF-8".into(),
        })?;
        Ok(Value::Str(Rc::from(s)))
    }

    fn push(&mut self, v: Value) -> Result<(), TorchError> {
        if self.stack.len() >= self.limits.max_stack {
            return Err(TorchError::Limit("stack size"));
        }
        self.stack.push(v);
        Ok(())
    }

    /// Pops one value, never reaching below the innermost mark (as Python's
    /// metastack forbids).
    fn pop(&mut self) -> Result<Value, TorchError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.malformed("stack underflow"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.malformed("stack underflow"))
    }

    fn top_mut(&mut self) -> Result<&mut Value, TorchError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.malformed("stack underflow"));
        }
        let at = self.at();
        self.stack.last_mut().ok_or(TorchError::Malformed {
            offset: at,
            what: "stack underflow".into(),
        })
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, TorchError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.malformed("no mark on the stack"))?;
        if mark > self.stack.len() {
            return Err(self.malformed("mark above the stack"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn seq(&self, items: Vec<Value>) -> Result<Rc<Seq>, TorchError> {
        if items.len() > self.limits.max_items {
            return Err(TorchError::Limit("container length"));
        }
        let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        if depth > self.limits.max_depth {
            return Err(TorchError::Limit("nesting depth"));
        }
        Ok(Rc::new(Seq { items, depth }))
    }

    fn tuple(&self, items: Vec<Value>) -> Result<Value, TorchError> {
        Ok(Value::Tuple(self.seq(items)?))
    }

    fn empty_dict() -> Value {
        Value::Dict(Rc::new(Map {
            items: Vec::new(),
            depth: 1,
        }))
    }

    fn extend_list(&mut self, items: Vec<Value>) -> Result<(), TorchError> {
        let (max_items, max_depth) = (self.limits.max_items, self.limits.max_depth);
        let at = self.at();
        let Value::List(list) = self.top_mut()? else {
            return Err(TorchError::Malformed {
                offset: at,
                what: "APPEND(S) on a non-list".into(),
            });
        };
        // make_mut clones at most once: after that the list on the stack is unique.
        let seq = Rc::make_mut(list);
        if seq.items.len().saturating_add(items.len()) > max_items {
            return Err(TorchError::Limit("container length"));
        }
        for v in items {
            seq.depth = seq.depth.max(1 + v.depth());
            seq.items.push(v);
        }
        if seq.depth > max_depth {
            return Err(TorchError::Limit("nesting depth"));
        }
        Ok(())
    }

    fn extend_dict(&mut self, items: Vec<Value>) -> Result<(), TorchError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.malformed("SETITEMS with an odd number of values"));
        }
        let (max_items, max_depth) = (self.limits.max_items, self.limits.max_depth);
        let at = self.at();
        let Value::Dict(dict) = self.top_mut()? else {
            return Err(TorchError::Malformed {
                offset: at,
                what: "SETITEM(S) on a non-dict".into(),
            });
        };
        let map = Rc::make_mut(dict);
        if map.items.len().saturating_add(items.len() / 2) > max_items {
            return Err(TorchError::Limit("container length"));
        }
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            map.depth = map.depth.max(1 + k.depth().max(v.depth()));
            // A repeated key replaces the earlier value, keeping its position, as a dict does.
            match map.items.iter_mut().find(|(old, _)| same_key(old, &k)) {
                Some(slot) => slot.1 = v,
                None => map.items.push((k, v)),
            }
        }
        if map.depth > max_depth {
            return Err(TorchError::Limit("nesting depth"));
        }
        Ok(())
    }

    fn memo_put(&mut self, key: u32) -> Result<(), TorchError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        let v = match self.stack.last() {
            Some(v) if self.stack.len() > floor => v.clone(),
            _ => return Err(self.malformed("memo put with an empty stack")),
        };
        if !self.memo.contains_key(&key) && self.memo.len() >= self.limits.max_memo {
            return Err(TorchError::Limit("memo size"));
        }
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), TorchError> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| self.malformed(format!("memo key {key} not set")))?;
        self.push(v)
    }

    fn run(&mut self) -> Result<Value, TorchError> {
        for _ in 0..self.limits.max_ops {
            let op_at = self.at();
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if !(2..=5).contains(&proto) {
                        return Err(TorchError::Unsupported(format!("pickle protocol {proto}")));
                    }
                }
                // FRAME: a length hint for buffered readers; we hold the whole file.
                0x95 => {
                    self.take(8)?;
                }
                b'.' => {
                    let v = self.pop()?;
                    if !self.stack.is_empty() || !self.marks.is_empty() {
                        return Err(self.malformed("values left on the stack at STOP"));
                    }
                    return Ok(v);
                }
                b'(' => {
                    if self.marks.len() >= self.limits.max_depth {
                        return Err(TorchError::Limit("mark depth"));
                    }
                    self.marks.push(self.stack.len());
                }
                b')' => self.push(self.tuple(Vec::new())?)?,
                b't' => {
                    let items = self.pop_mark()?;
                    let t = self.tuple(items)?;
                    self.push(t)?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    let t = self.tuple(items)?;
                    self.push(t)?;
                }
                b']' => {
                    let l = Value::List(self.seq(Vec::new())?);
                    self.push(l)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend_list(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.extend_list(items)?;
                }
                b'}' => self.push(Self::empty_dict())?,
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.extend_dict(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.extend_dict(items)?;
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.push(Value::Int(v.into()))?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v.into()))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.push(Value::Int(v.into()))?;
                }
                0x8a => {
                    let n = usize::from(self.u8()?);
                    // The legacy format's magic number takes ten bytes; nothing needs more than 16.
                    if n > 16 {
                        return Err(TorchError::Limit("integer width"));
                    }
                    let bytes = self.take(n)?;
                    let mut le = [0u8; 16];
                    le.get_mut(..n)
                        .ok_or(TorchError::Limit("integer width"))?
                        .copy_from_slice(bytes);
                    // Sign-extend a two's-complement value shorter than 16 bytes.
                    if n > 0 && n < 16 && bytes.last().is_some_and(|&b| b & 0x80 != 0) {
                        le.iter_mut().skip(n).for_each(|b| *b = 0xff);
                    }
                    self.push(Value::Int(i128::from_le_bytes(le)))?;
                }
                b'G' => {
                    self.take(8)?;
                    self.push(Value::Float)?;
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = self.text(n)?;
                    self.push(s)?;
                }
                0x8c => {
                    let n = usize::from(self.u8()?);
                    let s = self.text(n)?;
                    self.push(s)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = Global::resolve(&module, &name)
                        .ok_or(TorchError::ForbiddenGlobal { module, name })?;
                    self.push(Value::Global(g))?;
                }
                b'q' => {
                    let k = self.u8()?;
                    self.memo_put(k.into())?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = u32::try_from(self.memo.len())
                        .map_err(|_| TorchError::Limit("memo size"))?;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()?;
                    self.memo_get(k.into())?;
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?;
                }
                b'Q' => {
                    if !self.persistent {
                        return Err(self.malformed("persistent id outside the state_dict"));
                    }
                    let pid = self.pop()?;
                    let s = self.storage(&pid)?;
                    self.push(Value::Storage(s))?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = self.reduce(&f, &args)?;
                    self.push(v)?;
                }
                b'b' => {
                    let _state = self.pop()?;
                    // An OrderedDict's state is the state_dict's `_metadata`
                    // (module versions), which loading weights does not need.
                    match self.top_mut()? {
                        Value::Dict(_) => {}
                        other => {
                            let kind = other.kind();
                            return Err(self.malformed(format!("BUILD on a {kind}")));
                        }
                    }
                }
                other => {
                    return Err(TorchError::UnknownOpcode {
                        offset: op_at,
                        opcode: other,
                    })
                }
            }
        }
        Err(TorchError::Limit("opcode count"))
    }

    fn storage(&mut self, pid: &Value) -> Result<Rc<StorageRef>, TorchError> {
        let Value::Tuple(t) = pid else {
            return Err(self.malformed("persistent id is not a tuple"));
        };
        // ('storage', type, key, location, numel) and, in the legacy format, a
        // sixth item for views of a larger storage, which we do not support.
        let (tag, ty, key, numel, view) = match t.items.as_slice() {
            [tag, ty, key, _location, numel] => (tag, ty, key, numel, &Value::None),
            [tag, ty, key, _location, numel, view] => (tag, ty, key, numel, view),
            _ => return Err(self.malformed("persistent id of unexpected length")),
        };
        let (
            Value::Str(tag),
            Value::Global(Global::Storage(dtype)),
            Value::Str(key),
            Value::Int(n),
        ) = (tag, ty, key, numel)
        else {
            return Err(self.malformed("persistent id of unexpected types"));
        };
        if &**tag != "storage" {
            return Err(self.malformed("persistent id is not a storage"));
        }
        if !matches!(view, Value::None) {
            return Err(TorchError::Unsupported("storage views".into()));
        }
        let numel = usize::try_from(*n).map_err(|_| self.malformed("negative storage size"))?;
        if let Some(old) = self.storages.iter().find(|s| *s.key == **key) {
            if old.dtype != *dtype || old.numel != numel {
                return Err(self.malformed(format!("storage {key} declared twice differently")));
            }
            return Ok(old.clone());
        }
        if self.storages.len() >= self.limits.max_tensors {
            return Err(TorchError::Limit("storage count"));
        }
        let s = Rc::new(StorageRef {
            dtype: *dtype,
            key: key.to_string(),
            numel,
        });
        self.storages.push(s.clone());
        Ok(s)
    }

    fn dims(&self, v: &Value, what: &str) -> Result<Vec<usize>, TorchError> {
        let Value::Tuple(t) = v else {
            return Err(self.malformed(format!("tensor {what} is not a tuple")));
        };
        if t.items.len() > self.limits.max_dims {
            return Err(TorchError::Limit("tensor rank"));
        }
        t.items
            .iter()
            .map(|d| match d {
                Value::Int(n) => usize::try_from(*n)
                    .map_err(|_| self.malformed(format!("negative tensor {what}"))),
                _ => Err(self.malformed(format!("tensor {what} holds a non-integer"))),
            })
            .collect()
    }

    fn reduce(&mut self, f: &Value, args: &Value) -> Result<Value, TorchError> {
        let Value::Tuple(args) = args else {
            return Err(self.malformed("REDUCE arguments are not a tuple"));
        };
        match f {
            Value::Global(Global::OrderedDict) if args.items.is_empty() => Ok(Self::empty_dict()),
            Value::Global(Global::RebuildTensorV2) => {
                // (storage, offset, size, stride, requires_grad, hooks[, metadata])
                let (storage, offset, size, stride) = match args.items.as_slice() {
                    [s, o, sz, st, _, _] | [s, o, sz, st, _, _, _] => (s, o, sz, st),
                    _ => return Err(self.malformed("_rebuild_tensor_v2 arity")),
                };
                let (Value::Storage(storage), Value::Int(offset)) = (storage, offset) else {
                    return Err(self.malformed("_rebuild_tensor_v2 argument types"));
                };
                let offset =
                    usize::try_from(*offset).map_err(|_| self.malformed("negative offset"))?;
                let shape = self.dims(size, "size")?;
                let stride = self.dims(stride, "stride")?;
                if shape.len() != stride.len() {
                    return Err(self.malformed("size and stride of different ranks"));
                }
                check_bounds(storage, offset, &shape, &stride).map_err(|w| self.malformed(w))?;
                Ok(Value::Tensor(Rc::new(TensorRef {
                    storage: storage.clone(),
                    offset,
                    shape,
                    stride,
                })))
            }
            Value::Global(Global::RebuildParameter) => match args.items.as_slice() {
                [t @ Value::Tensor(_), _, _] => Ok(t.clone()),
                _ => Err(self.malformed("_rebuild_parameter arguments")),
            },
            other => Err(self.malformed(format!("REDUCE of a {}", other.kind()))),
        }
    }
}

/// Every element a view can address lies inside its storage.
fn check_bounds(
    storage: &StorageRef,
    offset: usize,
    shape: &[usize],
    stride: &[usize],
) -> Result<(), String> {
    if shape.contains(&0) {
        return Ok(());
    }
    let mut last = offset;
    for (&n, &s) in shape.iter().zip(stride) {
        last = (n - 1)
            .checked_mul(s)
            .and_then(|d| last.checked_add(d))
            .ok_or("tensor extent overflows")?;
    }
    if last >= storage.numel {
        return Err(format!(
            "tensor reaches element {last} of a {}-element storage",
            storage.numel
        ));
    }
    Ok(())
}

fn same_key(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::None, Value::None) => true,
        _ => false,
    }
}
