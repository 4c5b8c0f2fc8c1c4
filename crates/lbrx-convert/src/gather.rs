//! Reading a planned tensor's elements that are not one contiguous range of its source: stacked expert
//! tensors read part after part, and strided halves of fused projections read run by run. Both hand back the
//! bytes of output elements `[elem, elem + count)`.

use lbrx_core::{DType, Error, Result, Source};

/// Byte offset of `elem` elements into a tensor of `dtype` (element counts are block-aligned by construction).
pub(crate) fn bytes_of(dtype: DType, elems: u64) -> u64 {
    let i = dtype.info();
    elems / i.block_size as u64 * i.type_size as u64
}

/// Elements `[elem, elem + count)` of source tensors of `per` elements each, stacked in `parts` order.
pub(crate) fn stacked(
    src: &dyn Source,
    name: &str,
    parts: &[usize],
    per: u64,
    sdt: DType,
    elem: u64,
    count: u64,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes_of(sdt, count) as usize);
    let (mut e, end) = (elem, elem + count);
    while e < end {
        if per == 0 {
            return Err(Error::tensor(name.to_string(), "empty stacked parts"));
        }
        let (part, within) = ((e / per) as usize, e % per);
        let n = (per - within).min(end - e);
        let &p = parts.get(part).ok_or_else(|| {
            Error::tensor(name.to_string(), format!("stacked part {part} missing"))
        })?;
        out.extend_from_slice(&src.view_range(p, bytes_of(sdt, within), bytes_of(sdt, n))?);
        e += n;
    }
    Ok(out)
}

/// Where a strided input's runs are: `run` elements every `stride` elements from element `start` on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Runs {
    /// First element read.
    pub start: u64,
    /// Elements per run.
    pub run: u64,
    /// Elements from one run's start to the next.
    pub stride: u64,
}

/// Elements `[elem, elem + count)` of the runs `r` of source tensor `t`, joined.
pub(crate) fn strided(
    src: &dyn Source,
    name: &str,
    t: usize,
    r: Runs,
    sdt: DType,
    elem: u64,
    count: u64,
) -> Result<Vec<u8>> {
    if r.run == 0 || r.stride < r.run {
        return Err(Error::tensor(
            name.to_string(),
            "strided input with overlapping or empty runs",
        ));
    }
    let mut out = Vec::with_capacity(bytes_of(sdt, count) as usize);
    let (mut e, end) = (elem, elem + count);
    while e < end {
        let (k, within) = (e / r.run, e % r.run);
        let n = (r.run - within).min(end - e);
        let at = r.start + k * r.stride + within;
        out.extend_from_slice(&src.view_range(t, bytes_of(sdt, at), bytes_of(sdt, n))?);
        e += n;
    }
    Ok(out)
}
