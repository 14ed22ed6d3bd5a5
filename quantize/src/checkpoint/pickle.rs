//! The restricted pickle that `torch.save` writes for a `state_dict` (protocol 2, or up to 5
//! from newer Python): an `OrderedDict` of tensors, each `torch._utils._rebuild_tensor_v2`
//! over a storage named by `persistent_id`. Only the opcodes such a file uses are run, and only
//! the three callables it names are called (as data constructors: no Python object is built);
//! anything else is a named [`PickleError`]. Untrusted input never panics, never recurses
//! deeper than [`MAX_DEPTH`] and allocates no more than a small multiple of its own length.

use std::rc::Rc;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PickleError {
    #[error("the pickle ends inside an opcode, or before its STOP")]
    Truncated,
    #[error("opcode 0x{opcode:02x} at byte {at} is not one torch.save writes for a state_dict")]
    UnsupportedOpcode { opcode: u8, at: usize },
    #[error("opcode at byte {at} needs {needs} on the stack")]
    StackUnderflow { at: usize, needs: &'static str },
    #[error("memo slot {slot} is read at byte {at} but was never written")]
    MissingMemo { slot: u32, at: usize },
    #[error("the pickle calls {module}.{name}, which a state_dict does not use")]
    UnsupportedGlobal { module: String, name: String },
    #[error("{what} at byte {at}: {why}")]
    Malformed {
        what: &'static str,
        at: usize,
        why: String,
    },
    #[error("values nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("the pickle holds {0}, not a dict of tensors")]
    NotADict(&'static str),
    #[error("{key:?} holds {what}, not a tensor")]
    NotATensor { key: String, what: &'static str },
    #[error("a key of the state_dict is {0}, not a string")]
    KeyNotAString(&'static str),
}

/// Deeper than any state_dict (whose deepest value is a tensor's stride tuple, at 4).
pub const MAX_DEPTH: usize = 32;

/// Element types of torch's storages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl StorageType {
    fn from_class(name: &str) -> Option<StorageType> {
        Some(match name {
            "DoubleStorage" => StorageType::F64,
            "FloatStorage" => StorageType::F32,
            "HalfStorage" => StorageType::F16,
            "BFloat16Storage" => StorageType::BF16,
            "LongStorage" => StorageType::I64,
            "IntStorage" => StorageType::I32,
            "ShortStorage" => StorageType::I16,
            "CharStorage" => StorageType::I8,
            "ByteStorage" => StorageType::U8,
            "BoolStorage" => StorageType::Bool,
            _ => return None,
        })
    }

    pub fn size_in_bytes(self) -> usize {
        match self {
            StorageType::F64 | StorageType::I64 => 8,
            StorageType::F32 | StorageType::I32 => 4,
            StorageType::F16 | StorageType::BF16 | StorageType::I16 => 2,
            StorageType::I8 | StorageType::U8 | StorageType::Bool => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(
            self,
            StorageType::F64 | StorageType::F32 | StorageType::F16 | StorageType::BF16
        )
    }

    /// The name safetensors gives the same type, so both formats report dtypes alike.
    pub fn name(self) -> &'static str {
        match self {
            StorageType::F64 => "F64",
            StorageType::F32 => "F32",
            StorageType::F16 => "F16",
            StorageType::BF16 => "BF16",
            StorageType::I64 => "I64",
            StorageType::I32 => "I32",
            StorageType::I16 => "I16",
            StorageType::I8 => "I8",
            StorageType::U8 => "U8",
            StorageType::Bool => "BOOL",
        }
    }
}

/// A tensor as the pickle describes it: a strided view of a storage held elsewhere in the zip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorView {
    /// The storage's file name under `<archive>/data/`.
    pub storage: String,
    pub dtype: StorageType,
    /// Elements the storage holds, as the pickle claims; the reader trusts the storage file's
    /// own length instead.
    pub storage_len: usize,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

/// What the machine holds: the few kinds of value a state_dict's pickle builds.
#[derive(Clone, Debug)]
enum Value {
    None,
    Bool,
    Int(i64),
    Float,
    Str(Rc<str>),
    Global(Rc<(String, String)>),
    Storage(Rc<(StorageType, String, usize)>),
    Tensor(Rc<TensorView>),
    /// Tuples and lists; `depth` counts the levels below, so nesting stays bounded.
    Seq {
        items: Rc<Vec<Value>>,
        depth: usize,
    },
    Dict {
        items: Rc<Vec<(Value, Value)>>,
        depth: usize,
    },
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool => "a bool",
            Value::Int(_) => "an int",
            Value::Float => "a float",
            Value::Str(_) => "a string",
            Value::Global(_) => "a global",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
            Value::Seq { .. } => "a tuple or list",
            Value::Dict { .. } => "a dict",
        }
    }

    fn depth(&self) -> usize {
        match self {
            Value::Seq { depth, .. } | Value::Dict { depth, .. } => *depth,
            _ => 0,
        }
    }

    fn seq(items: Vec<Value>) -> Result<Value, PickleError> {
        let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(PickleError::TooDeep);
        }
        Ok(Value::Seq {
            items: Rc::new(items),
            depth,
        })
    }
}

/// Runs the pickle and returns the state_dict it builds, in its order.
pub fn load_state_dict(bytes: &[u8]) -> Result<Vec<(String, TensorView)>, PickleError> {
    let Value::Dict { items, .. } = Machine::new(bytes).run()? else {
        return Err(PickleError::NotADict("something else"));
    };
    items
        .iter()
        .map(|(key, value)| {
            let Value::Str(key) = key else {
                return Err(PickleError::KeyNotAString(key.kind()));
            };
            match value {
                Value::Tensor(view) => Ok((key.to_string(), TensorView::clone(view))),
                other => Err(PickleError::NotATensor {
                    key: key.to_string(),
                    what: other.kind(),
                }),
            }
        })
        .collect()
}

struct Machine<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Where the current opcode started, for errors.
    op_at: usize,
    stack: Vec<Value>,
    /// Stack lengths at each MARK.
    marks: Vec<usize>,
    memo: std::collections::HashMap<u32, Value>,
}

impl<'a> Machine<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Machine {
            bytes,
            at: 0,
            op_at: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: std::collections::HashMap::new(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let bytes: &'a [u8] = self.bytes;
        let end = self.at.checked_add(n).ok_or(PickleError::Truncated)?;
        let taken = bytes.get(self.at..end).ok_or(PickleError::Truncated)?;
        self.at = end;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated)?;
        let line = self.take(len + 1)?;
        std::str::from_utf8(&line[..len]).map_err(|_| self.malformed("GLOBAL", "not UTF-8"))
    }

    fn text(&mut self, len: usize) -> Result<Value, PickleError> {
        let bytes = self.take(len)?;
        let text =
            std::str::from_utf8(bytes).map_err(|_| self.malformed("a string", "not UTF-8"))?;
        Ok(Value::Str(text.into()))
    }

    fn malformed(&self, what: &'static str, why: impl Into<String>) -> PickleError {
        PickleError::Malformed {
            what,
            at: self.op_at,
            why: why.into(),
        }
    }

    fn pop(&mut self, needs: &'static str) -> Result<Value, PickleError> {
        self.stack.pop().ok_or(PickleError::StackUnderflow {
            at: self.op_at,
            needs,
        })
    }

    fn top(&mut self, needs: &'static str) -> Result<&mut Value, PickleError> {
        let at = self.op_at;
        self.stack
            .last_mut()
            .ok_or(PickleError::StackUnderflow { at, needs })
    }

    /// The values pushed since the last MARK, which is removed.
    fn pop_to_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let mark = self.marks.pop().ok_or(PickleError::StackUnderflow {
            at: self.op_at,
            needs: "a MARK",
        })?;
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn memo_put(&mut self, slot: u32) -> Result<(), PickleError> {
        let value = self.top("a value to memoize")?.clone();
        self.memo.insert(slot, value);
        Ok(())
    }

    fn memo_get(&mut self, slot: u32) -> Result<(), PickleError> {
        let value = self
            .memo
            .get(&slot)
            .ok_or(PickleError::MissingMemo {
                slot,
                at: self.op_at,
            })?
            .clone();
        self.stack.push(value);
        Ok(())
    }

    fn push_tuple(&mut self, n: usize) -> Result<(), PickleError> {
        let len = self.stack.len();
        if len < n {
            return Err(PickleError::StackUnderflow {
                at: self.op_at,
                needs: "the tuple's items",
            });
        }
        let items = self.stack.split_off(len - n);
        self.stack.push(Value::seq(items)?);
        Ok(())
    }

    fn set_items(&mut self, pairs: Vec<Value>) -> Result<(), PickleError> {
        if !pairs.len().is_multiple_of(2) {
            return Err(self.malformed("SETITEMS", "an odd number of keys and values"));
        }
        let at = self.op_at;
        let Value::Dict { items, depth } = self.top("a dict")? else {
            return Err(PickleError::Malformed {
                what: "SETITEM(S)",
                at,
                why: "the target is not a dict".into(),
            });
        };
        let mut pairs = pairs.into_iter();
        while let (Some(key), Some(value)) = (pairs.next(), pairs.next()) {
            *depth = (*depth).max(1 + key.depth().max(value.depth()));
            Rc::make_mut(items).push((key, value));
        }
        if *depth > MAX_DEPTH {
            return Err(PickleError::TooDeep);
        }
        Ok(())
    }

    fn append(&mut self, values: Vec<Value>) -> Result<(), PickleError> {
        let at = self.op_at;
        let Value::Seq { items, depth } = self.top("a list")? else {
            return Err(PickleError::Malformed {
                what: "APPEND(S)",
                at,
                why: "the target is not a list".into(),
            });
        };
        for value in values {
            *depth = (*depth).max(1 + value.depth());
            Rc::make_mut(items).push(value);
        }
        if *depth > MAX_DEPTH {
            return Err(PickleError::TooDeep);
        }
        Ok(())
    }

    fn run(mut self) -> Result<Value, PickleError> {
        loop {
            self.op_at = self.at;
            let opcode = self.u8()?;
            match opcode {
                0x80 => {
                    // PROTO: protocols 2 to 5 hold nothing this reader does not know.
                    let protocol = self.u8()?;
                    if !(2..=5).contains(&protocol) {
                        return Err(self.malformed("PROTO", format!("protocol {protocol}")));
                    }
                }
                0x95 => {
                    // FRAME: a length hint only.
                    self.take(8)?;
                }
                b'.' => return self.pop("the result"),
                b'(' => self.marks.push(self.stack.len()),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool),
                0x89 => self.stack.push(Value::Bool),
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v.into()))
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.stack.push(Value::Int(v.into()))
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.stack.push(Value::Int(v.into()))
                }
                0x8a => {
                    // LONG1: a little-endian two's complement integer of n bytes.
                    let n = usize::from(self.u8()?);
                    let bytes = self.take(n)?;
                    if n > 8 {
                        return Err(self.malformed("LONG1", format!("{n} bytes exceed 64 bits")));
                    }
                    let mut full = [0u8; 8];
                    full[..n].copy_from_slice(bytes);
                    if bytes.last().is_some_and(|b| b & 0x80 != 0) {
                        full[n..].fill(0xff);
                    }
                    self.stack.push(Value::Int(i64::from_le_bytes(full)))
                }
                b'G' => {
                    self.take(8)?;
                    self.stack.push(Value::Float)
                }
                b'X' => {
                    let len = u32::from_le_bytes(self.le()?) as usize;
                    let text = self.text(len)?;
                    self.stack.push(text)
                }
                0x8c => {
                    let len = usize::from(self.u8()?);
                    let text = self.text(len)?;
                    self.stack.push(text)
                }
                b'q' => {
                    let slot = self.u8()?;
                    self.memo_put(slot.into())?
                }
                b'r' => {
                    let slot = u32::from_le_bytes(self.le()?);
                    self.memo_put(slot)?
                }
                0x94 => {
                    let slot = u32::try_from(self.memo.len())
                        .map_err(|_| self.malformed("MEMOIZE", "too many memo slots"))?;
                    self.memo_put(slot)?
                }
                b'h' => {
                    let slot = self.u8()?;
                    self.memo_get(slot.into())?
                }
                b'j' => {
                    let slot = u32::from_le_bytes(self.le()?);
                    self.memo_get(slot)?
                }
                b')' => self.stack.push(Value::seq(Vec::new())?),
                b']' => self.stack.push(Value::seq(Vec::new())?),
                b'}' => self.stack.push(Value::Dict {
                    items: Rc::new(Vec::new()),
                    depth: 1,
                }),
                b't' | b'l' => {
                    let items = self.pop_to_mark()?;
                    self.stack.push(Value::seq(items)?)
                }
                0x85 => self.push_tuple(1)?,
                0x86 => self.push_tuple(2)?,
                0x87 => self.push_tuple(3)?,
                b'a' => {
                    let value = self.pop("a value to append")?;
                    self.append(vec![value])?
                }
                b'e' => {
                    let values = self.pop_to_mark()?;
                    self.append(values)?
                }
                b's' => {
                    let value = self.pop("a value")?;
                    let key = self.pop("a key")?;
                    self.set_items(vec![key, value])?
                }
                b'u' => {
                    let pairs = self.pop_to_mark()?;
                    self.set_items(pairs)?
                }
                b'c' => {
                    let module = self.line()?.to_owned();
                    let name = self.line()?.to_owned();
                    self.stack.push(Value::Global(Rc::new((module, name))))
                }
                0x93 => {
                    let name = self.pop("a global's name")?;
                    let module = self.pop("a global's module")?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return Err(self.malformed("STACK_GLOBAL", "module and name not strings"));
                    };
                    self.stack.push(Value::Global(Rc::new((
                        module.to_string(),
                        name.to_string(),
                    ))))
                }
                b'Q' => {
                    let pid = self.pop("a persistent id")?;
                    let storage = self.storage(&pid)?;
                    self.stack.push(storage)
                }
                b'R' | 0x81 => {
                    let args = self.pop("the arguments")?;
                    let callable = self.pop("a callable")?;
                    let value = self.call(&callable, &args)?;
                    self.stack.push(value)
                }
                b'b' => {
                    // BUILD sets attributes: on a state_dict, `_metadata` (module versions),
                    // which the reader has no use for.
                    self.pop("the state")?;
                    if !matches!(self.top("an object")?, Value::Dict { .. }) {
                        return Err(self.malformed("BUILD", "only a dict's attributes are set"));
                    }
                }
                _ => {
                    return Err(PickleError::UnsupportedOpcode {
                        opcode,
                        at: self.op_at,
                    });
                }
            }
        }
    }

    /// `("storage", torch.<Type>Storage, key, location, numel)`.
    fn storage(&self, pid: &Value) -> Result<Value, PickleError> {
        let bad = |why: &str| self.malformed("BINPERSID", why);
        let Value::Seq { items, .. } = pid else {
            return Err(bad("the persistent id is not a tuple"));
        };
        let [
            Value::Str(tag),
            Value::Global(class),
            Value::Str(key),
            _,
            numel,
        ] = &items[..]
        else {
            return Err(bad("not (\"storage\", storage type, key, location, numel)"));
        };
        if &**tag != "storage" {
            return Err(bad("the persistent id is not a storage"));
        }
        let (module, name) = &**class;
        let dtype = StorageType::from_class(name)
            .filter(|_| module == "torch")
            .ok_or_else(|| PickleError::UnsupportedGlobal {
                module: module.clone(),
                name: name.clone(),
            })?;
        let numel = non_negative(numel).ok_or_else(|| bad("numel is not a count"))?;
        Ok(Value::Storage(Rc::new((dtype, key.to_string(), numel))))
    }

    /// REDUCE, for the three callables a state_dict uses.
    fn call(&self, callable: &Value, args: &Value) -> Result<Value, PickleError> {
        let Value::Global(global) = callable else {
            return Err(self.malformed("REDUCE", "the callable is not a global"));
        };
        let Value::Seq { items: args, .. } = args else {
            return Err(self.malformed("REDUCE", "the arguments are not a tuple"));
        };
        match (global.0.as_str(), global.1.as_str()) {
            ("collections", "OrderedDict") if args.is_empty() => Ok(Value::Dict {
                items: Rc::new(Vec::new()),
                depth: 1,
            }),
            ("torch._utils", "_rebuild_tensor_v2") => self.rebuild_tensor(args),
            (module, name) => Err(PickleError::UnsupportedGlobal {
                module: module.to_owned(),
                name: name.to_owned(),
            }),
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
    /// backward_hooks[, metadata])`.
    fn rebuild_tensor(&self, args: &[Value]) -> Result<Value, PickleError> {
        let bad = |why: String| self.malformed("_rebuild_tensor_v2", why);
        let [storage, offset, shape, stride, ..] = args else {
            return Err(bad(format!(
                "takes at least 4 arguments (storage, offset, size, stride), got {}",
                args.len()
            )));
        };
        let Value::Storage(storage) = storage else {
            return Err(bad(format!("the storage is {}", storage.kind())));
        };
        let offset = non_negative(offset).ok_or_else(|| bad("the offset is not a count".into()))?;
        let counts = |v: &Value, what: &str| match v {
            Value::Seq { items, .. } => items
                .iter()
                .map(non_negative)
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| bad(format!("the {what} holds something other than counts"))),
            other => Err(bad(format!("the {what} is {}", other.kind()))),
        };
        let shape = counts(shape, "size")?;
        let stride = counts(stride, "stride")?;
        if shape.len() != stride.len() {
            return Err(bad(format!(
                "size {shape:?} and stride {stride:?} differ in length"
            )));
        }
        let (dtype, key, storage_len) = &**storage;
        Ok(Value::Tensor(Rc::new(TensorView {
            storage: key.clone(),
            dtype: *dtype,
            storage_len: *storage_len,
            offset,
            shape,
            stride,
        })))
    }
}

fn non_negative(value: &Value) -> Option<usize> {
    match value {
        Value::Int(n) => usize::try_from(*n).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `OrderedDict` with one tensor `k` of shape (2, 3), as torch.save writes it.
    const ONE_TENSOR: &[u8] = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00kctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQK\x00K\x02K\x03\x86K\x03K\x01\x86\x89h\x00)Rtq\x03Ru}X\t\x00\x00\x00_metadatah\x00)Rsb.";

    #[test]
    fn a_state_dict_as_torch_writes_it() {
        let tensors = load_state_dict(ONE_TENSOR).unwrap();
        assert_eq!(
            tensors,
            [(
                "k".to_owned(),
                TensorView {
                    storage: "0".into(),
                    dtype: StorageType::F32,
                    storage_len: 6,
                    offset: 0,
                    shape: vec![2, 3],
                    stride: vec![3, 1],
                }
            )]
        );
    }

    #[test]
    fn every_cut_and_every_flipped_byte_is_an_error_or_a_state_dict() {
        for len in 0..ONE_TENSOR.len() {
            assert!(load_state_dict(&ONE_TENSOR[..len]).is_err(), "cut at {len}");
        }
        for i in 0..ONE_TENSOR.len() {
            for bit in 0..8 {
                let mut bytes = ONE_TENSOR.to_vec();
                bytes[i] ^= 1 << bit;
                let _ = load_state_dict(&bytes);
            }
        }
    }

    #[test]
    fn other_code_is_refused_by_name() {
        let os_system = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.";
        assert_eq!(
            load_state_dict(os_system).unwrap_err(),
            PickleError::UnsupportedGlobal {
                module: "os".into(),
                name: "system".into()
            }
        );
        // INST (protocol 0) is not among the opcodes torch.save writes.
        assert_eq!(
            load_state_dict(b"\x80\x02i").unwrap_err(),
            PickleError::UnsupportedOpcode {
                opcode: b'i',
                at: 2
            }
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let mut deep = b"\x80\x02]".to_vec();
        deep.extend(std::iter::repeat_n(0x85, 100_000));
        deep.push(b'.');
        assert_eq!(load_state_dict(&deep).unwrap_err(), PickleError::TooDeep);
    }

    #[test]
    fn memo_copies_stay_cheap() {
        // Each step doubles the value's size if copies were deep: 2^30 leaves.
        let mut bomb = b"\x80\x02]q\x00".to_vec();
        for _ in 0..30 {
            bomb.extend_from_slice(b"h\x00h\x00\x86q\x00");
        }
        bomb.push(b'.');
        assert_eq!(
            load_state_dict(&bomb).unwrap_err(),
            PickleError::NotADict("something else")
        );
    }
}
