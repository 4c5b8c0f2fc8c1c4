//! The SafeTensors writers: one `.safetensors` file, or a directory of shards (`model-00001-of-0000N`, by size
//! or as given) with the `*.safetensors.index.json` `transformers` writes. Headers from
//! `lbrx_formats::safetensors`.

use super::{file_name, plan_of, Layout, OutputWriter};
use crate::atomic::OutputKind;
use crate::plan::{Plan, PlannedFile, WriterKind};
use lbrx_core::Result;
use lbrx_formats::safetensors::{
    header_bytes, index_json, plan_shards, shard_file_names, OutTensor, INDEX_SUFFIX,
};
use std::collections::BTreeMap;

/// One SafeTensors file.
pub struct SafetensorsFile;

/// A directory of SafeTensors shards.
pub struct SafetensorsDir;

fn out_tensors(layout: &Layout) -> Vec<OutTensor> {
    layout
        .tensors
        .iter()
        .map(|t| OutTensor {
            name: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
        })
        .collect()
}

/// Files, each tensor's (file, offset, length), and the weight map of a placement.
type Placed = (
    Vec<PlannedFile>,
    Vec<(usize, u64, u64)>,
    BTreeMap<String, String>,
);

/// Places every tensor of `groups` (one file each, named `names`) after its file's header.
fn place(
    layout: &Layout,
    st: &[OutTensor],
    groups: &[Vec<usize>],
    names: &[String],
) -> Result<Placed> {
    let mut files = Vec::with_capacity(groups.len());
    let mut placed = vec![(0, 0, 0); st.len()];
    let mut weight_map = BTreeMap::new();
    for (fi, (members, name)) in groups.iter().zip(names).enumerate() {
        let l = header_bytes(st, members, layout.string_metadata.as_ref())?;
        for p in &l.tensors {
            weight_map.insert(st[p.tensor].name.clone(), name.clone());
            placed[p.tensor] = (fi, p.offset, p.len);
        }
        files.push(PlannedFile {
            name: name.clone(),
            size: l.size,
            header: l.header,
        });
    }
    Ok((files, placed, weight_map))
}

impl OutputWriter for SafetensorsFile {
    fn layout(&self, layout: Layout) -> Result<Plan> {
        let st = out_tensors(&layout);
        let groups = vec![(0..st.len()).collect()];
        let (files, placed, _) = place(&layout, &st, &groups, &[file_name(&layout.dst)])?;
        let dst = layout.dst.clone();
        Ok(plan_of(
            layout,
            OutputKind::File,
            dst,
            files,
            placed,
            WriterKind::SafetensorsFile,
        ))
    }
}

impl OutputWriter for SafetensorsDir {
    fn layout(&self, mut layout: Layout) -> Result<Plan> {
        let st = out_tensors(&layout);
        let sizes: Vec<u64> = st.iter().map(OutTensor::byte_len).collect::<Result<_>>()?;
        let groups = match layout.groups.take() {
            Some(g) => g,
            None => plan_shards(&sizes, Some(layout.max_shard_size.unwrap_or(5_000_000_000))),
        };
        let stem = layout.stem.clone().unwrap_or_else(|| "model".into());
        let names = shard_file_names(groups.len(), &stem);
        let (files, placed, weight_map) = place(&layout, &st, &groups, &names)?;
        let data_bytes: u64 = sizes.iter().sum();
        if let Some(extra) = layout.index_extra.take() {
            // MLX's index: always written, with the extra metadata (total_parameters)
            let mut meta = serde_json::json!({ "total_size": data_bytes });
            if let (Some(m), serde_json::Value::Object(e)) = (meta.as_object_mut(), extra) {
                m.extend(e);
            }
            let index = serde_json::json!({ "metadata": meta, "weight_map": weight_map });
            layout
                .small_files
                .push((format!("{stem}{INDEX_SUFFIX}"), super::pretty(&index)));
        } else if files.len() > 1 {
            layout.small_files.push((
                format!("{stem}{INDEX_SUFFIX}"),
                index_json(data_bytes, &weight_map),
            ));
        }
        let dst = layout.dst.clone();
        Ok(plan_of(
            layout,
            OutputKind::Dir,
            dst,
            files,
            placed,
            WriterKind::SafetensorsDir,
        ))
    }
}
