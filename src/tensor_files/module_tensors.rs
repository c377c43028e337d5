//! Walking a Burn module tree to and from [`NamedTensor`]s under Burn's own module paths
//! (`bn1.gamma`, `layer1.0.shortcut.conv.weight`, …) and layout. Checkpoints store these as they
//! are; the PyTorch names of an export are made from them (`torch_names`).

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData, Transaction};

use super::{FileError, NamedTensor, TensorValues};

/// The model's parameters and batch-norm statistics under their Burn module paths
/// (`bn1.gamma`, `layer1.0.shortcut.conv.weight`, …), in Burn's own layout.
pub fn module_tensors<M: Module>(module: &M) -> Vec<NamedTensor> {
    let mut collector = Collector::default();
    module.visit(&mut collector);
    if collector.named.is_empty() {
        return Vec::new();
    }
    // One read from the device for the whole module (one submission, no copy into one buffer)
    // instead of one per tensor.
    collector
        .named
        .into_iter()
        .zip(collector.transaction.execute())
        .map(|((name, shape), data)| NamedTensor {
            name,
            shape,
            values: TensorValues::F32(
                data.convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("parameters are floats"),
            ),
        })
        .collect()
}

/// Replaces the module's tensors by the ones named in `tensors` (Burn paths, Burn layout).
/// Every tensor of the module must be present with the right shape.
pub fn load_module_tensors<M: Module>(
    module: M,
    tensors: &BTreeMap<String, NamedTensor>,
    source: &Path,
) -> Result<M, FileError> {
    let mut loader = Loader {
        tensors,
        path: Vec::new(),
        error: None,
    };
    let module = module.map(&mut loader);
    match loader.error {
        Some(message) => Err(FileError::format(source, message)),
        None => Ok(module),
    }
}

#[derive(Default)]
struct Collector {
    path: Vec<String>,
    /// Name and shape of each tensor, in visiting order.
    named: Vec<(String, Vec<usize>)>,
    /// The same tensors, to be read together.
    transaction: Transaction,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val().detach();
        self.named
            .push((self.path.join("."), tensor.dims().to_vec()));
        self.transaction = std::mem::take(&mut self.transaction).register(tensor);
    }
}

struct Loader<'a> {
    tensors: &'a BTreeMap<String, NamedTensor>,
    path: Vec<String>,
    error: Option<String>,
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.join(".");
        let stored = match self.tensors.get(&name) {
            Some(stored) => stored,
            None => {
                self.error.get_or_insert(format!("missing tensor '{name}'"));
                return param;
            }
        };
        let TensorValues::F32(values) = &stored.values else {
            self.error
                .get_or_insert(format!("tensor '{name}' is not f32"));
            return param;
        };
        let expected = param.val().dims().to_vec();
        if stored.shape != expected {
            self.error.get_or_insert(format!(
                "tensor '{name}' has shape {:?}, the model needs {expected:?}",
                stored.shape
            ));
            return param;
        }
        let data = TensorData::new(values.clone(), stored.shape.clone());
        param.map(|current| {
            let loaded = Tensor::from_data(data, &current.device());
            if current.is_require_grad() {
                loaded.require_grad()
            } else {
                loaded
            }
        })
    }
}
