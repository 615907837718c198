//! Structure and union layout for Python: `layout(...)` runs `rawffi::layout` and returns
//! the offsets the `_ctypes` layer puts in its field descriptors, and the aggregate's
//! `CType`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use rawffi::layout::{Layout, LayoutKind, LayoutRequest, MemberDecl};

use crate::ctype::{CType, Shape};
use crate::errors::layout_error;
use crate::field::BitSpec;

/// A computed layout.
#[pyclass(frozen, module = "jitctypes._rawffi", name = "Layout")]
pub struct PyLayout {
    #[pyo3(get)]
    pub size: usize,
    #[pyo3(get)]
    align: usize,
    /// `(offset, size, bits)` per member, `bits` None for ordinary fields.
    #[pyo3(get)]
    pub fields: Vec<(usize, usize, Option<BitSpec>)>,
    /// The aggregate as a C type (for fields of other aggregates, arguments and results).
    #[pyo3(get)]
    pub ctype: Py<CType>,
}

/// Lays out a structure (`kind="struct"`) or union (`"union"`) of `members`, each a
/// `(CType, bits or None)`, with `_pack_` (None or 0: natural), non-native byte order
/// (`swapped`), continuing after `base` (the CType of a base structure).
#[pyfunction]
#[pyo3(signature = (kind, members, pack = None, swapped = false, base = None, align = None))]
pub fn layout(
    py: Python<'_>,
    kind: &str,
    members: Vec<(Bound<'_, CType>, Option<u32>)>,
    pack: Option<usize>,
    swapped: bool,
    base: Option<Bound<'_, CType>>,
    align: Option<usize>,
) -> PyResult<PyLayout> {
    lay_out(py, layout_kind(kind)?, &members, pack, swapped, base, align)
}

pub fn layout_kind(kind: &str) -> PyResult<LayoutKind> {
    match kind {
        "struct" => Ok(LayoutKind::Struct),
        "union" => Ok(LayoutKind::Union),
        other => Err(PyValueError::new_err(format!("unknown aggregate kind {other:?}"))),
    }
}

pub fn lay_out(
    py: Python<'_>,
    kind: LayoutKind,
    members: &[(Bound<'_, CType>, Option<u32>)],
    pack: Option<usize>,
    swapped: bool,
    base: Option<Bound<'_, CType>>,
    align: Option<usize>,
) -> PyResult<PyLayout> {
    let decls: Vec<MemberDecl> = members
        .iter()
        .map(|(ctype, bits)| MemberDecl { ty: ctype.get().jit.clone(), bits: *bits })
        .collect();
    let base = base.map(|base| base.get().clone_shape());
    let request = LayoutRequest {
        kind,
        members: &decls,
        pack: pack.filter(|&pack| pack != 0),
        swapped,
        base: base.as_ref().map(|(size, align, _)| (*size, *align)),
        min_align: align.filter(|&align| align > 1).unwrap_or(1),
    };
    let computed = Layout::compute(&request).map_err(layout_error)?;
    let jit = match &base {
        Some((_, _, base_type)) => computed.member_type_with_base(&request, base_type),
        None => computed.member_type(&request),
    }
    .map_err(layout_error)?;
    let fields = computed
        .fields
        .iter()
        .map(|field| {
            let bits = field.bitfield.map(|bits| (bits.shift, bits.width, field.size));
            (field.offset, field.size, bits)
        })
        .collect();
    let ctype = CType::new(Shape::Aggregate, jit, computed.size, computed.align);
    Ok(PyLayout { size: computed.size, align: computed.align, fields, ctype: Py::new(py, ctype)? })
}

impl CType {
    /// `(size, alignment, jit type)` of an aggregate used as a base.
    fn clone_shape(&self) -> (usize, usize, jit::Type) {
        (self.size, self.align, self.jit.clone())
    }
}
