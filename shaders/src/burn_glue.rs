//! Kernel outputs handed to Burn: a kernel that writes a new f32 buffer on a wgpu device runs as
//! an operation of Burn's fusion stream, and its buffer becomes a Burn tensor on that device
//! without a copy. Burn's fusion runs its operations on a server of its own, in the order they
//! were recorded; queued there, the launch keeps its place among them, where one made straight on
//! the device's client from the recording thread would rely on the two paths reaching the device
//! in order. Fusion does not fuse it with other operations.

use burn::tensor::{DType, Shape, Tensor};
use burn_cubecl::fusion::{CubeFusionHandle, FusionCubeRuntime};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{CubeBackend, CubeDevice};
use burn_fusion::stream::{Operation, StreamId};
use burn_fusion::{ExecutionError, FusionTensor, get_client};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, OperationOutput, TensorIr};
use cubecl::prelude::Client;
use cubecl::server::Handle;

/// The tensor of `shape` f32 values that `launch` writes, contiguous, into the buffer it returns,
/// on `device`; `launch` runs when Burn's fusion stream reaches it (`name` names it there).
pub fn float_tensor_from_kernel<const D: usize, F>(
    name: &'static str,
    shape: [usize; D],
    device: &CubeDevice,
    launch: F,
) -> Tensor<D>
where
    F: Fn(&Client) -> Handle + Send + Sync + 'static,
{
    let registered = fusion_tensor_from_kernel(
        name,
        Shape::from(shape),
        device,
        Vec::new(),
        move |client, _| launch(client),
    );
    Tensor::from_primitive::<burn_cubecl::Cube>(registered)
}

/// [`float_tensor_from_kernel`] at the level of Burn's fusion backend, for a kernel that also
/// reads `inputs` (tensors on `device`, contiguous): `launch` gets their buffers, in order, once
/// the stream has written them. A served device's custom operation answers with this primitive
/// (`burn::backend::Cube` is fusion over CubeCL), where the engine wants a `Tensor`.
pub fn fusion_tensor_from_kernel<F>(
    name: &'static str,
    shape: Shape,
    device: &CubeDevice,
    inputs: Vec<FusionTensor<FusionCubeRuntime>>,
    launch: F,
) -> FusionTensor<FusionCubeRuntime>
where
    F: Fn(&Client, &[Handle]) -> Handle + Send + Sync + 'static,
{
    let fusion = get_client::<CubeBackend>(device);
    let inputs: Vec<TensorIr> = inputs.into_iter().map(FusionTensor::into_ir).collect();
    let out = TensorIr::uninit(fusion.create_empty_handle(), shape, DType::F32);
    fusion
        .register(
            StreamId::current(),
            OperationIr::Custom(CustomOpIr::new(name, &inputs, std::slice::from_ref(&out))),
            KernelOperation {
                inputs,
                out,
                device: device.clone(),
                launch,
            },
        )
        .output()
}

/// A kernel launch as a fusion operation, reading its inputs and writing its output tensor.
struct KernelOperation<F> {
    inputs: Vec<TensorIr>,
    out: TensorIr,
    device: CubeDevice,
    launch: F,
}

impl<F> std::fmt::Debug for KernelOperation<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelOperation")
            .field("inputs", &self.inputs)
            .field("out", &self.out)
            .finish_non_exhaustive()
    }
}

impl<F> Operation<FusionCubeRuntime> for KernelOperation<F>
where
    F: Fn(&Client, &[Handle]) -> Handle + Send + Sync,
{
    fn execute(
        &self,
        handles: &mut HandleContainer<CubeFusionHandle>,
    ) -> Result<(), ExecutionError> {
        let client = self.device.client();
        // A CubeCL tensor is the same buffer whatever its kind, so the integer getter serves
        // every input.
        let inputs: Vec<Handle> = self
            .inputs
            .iter()
            .map(|input| handles.get_int_tensor::<CubeBackend>(input).handle)
            .collect();
        let handle = (self.launch)(&client, &inputs);
        let tensor = CubeTensor::new_contiguous(
            client,
            self.device.clone(),
            self.out.shape.clone(),
            handle,
            DType::F32,
        );
        handles.register_float_tensor::<CubeBackend>(&self.out.id, tensor);
        Ok(())
    }
}
