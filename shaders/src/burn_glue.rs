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
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};
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
    let out_device = device.clone();
    let [out] = fusion_tensors_from_kernel(
        name,
        [shape],
        device,
        inputs,
        move |inputs: &[CubeTensor], shapes: &[Shape; 1]| {
            let client = out_device.client();
            let handles: Vec<Handle> = inputs.iter().map(|input| input.handle.clone()).collect();
            let handle = launch(&client, &handles);
            [CubeTensor::new_contiguous(
                client,
                out_device.clone(),
                shapes[0].clone(),
                handle,
                DType::F32,
            )]
        },
    );
    out
}

/// A kernel with `N` f32 outputs of the given `shapes` as one operation of Burn's fusion stream:
/// `launch` gets the CubeCL tensors of `inputs` (tensors on `device`, with their strides) once the
/// stream has written them, and returns its outputs, in any memory layout.
pub fn fusion_tensors_from_kernel<F, const N: usize>(
    name: &'static str,
    shapes: [Shape; N],
    device: &CubeDevice,
    inputs: Vec<FusionTensor<FusionCubeRuntime>>,
    launch: F,
) -> [FusionTensor<FusionCubeRuntime>; N]
where
    F: Fn(&[CubeTensor], &[Shape; N]) -> [CubeTensor; N] + Send + Sync + 'static,
{
    let fusion = get_client::<CubeBackend>(device);
    let inputs: Vec<TensorIr> = inputs.into_iter().map(FusionTensor::into_ir).collect();
    let outputs: [TensorIr; N] = shapes
        .clone()
        .map(|shape| TensorIr::uninit(fusion.create_empty_handle(), shape, DType::F32));
    let registered = fusion.register(
        StreamId::current(),
        OperationIr::Custom(CustomOpIr::new(name, &inputs, &outputs)),
        KernelOperation {
            inputs,
            outputs: outputs.clone(),
            shapes,
            launch,
        },
    );
    let mut registered = registered.into_iter();
    std::array::from_fn(|_| registered.next().expect("one tensor per output"))
}

/// A kernel launch as a fusion operation, reading its inputs and writing its output tensors.
struct KernelOperation<F, const N: usize> {
    inputs: Vec<TensorIr>,
    outputs: [TensorIr; N],
    shapes: [Shape; N],
    launch: F,
}

impl<F, const N: usize> std::fmt::Debug for KernelOperation<F, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelOperation")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl<F, const N: usize> Operation<FusionCubeRuntime> for KernelOperation<F, N>
where
    F: Fn(&[CubeTensor], &[Shape; N]) -> [CubeTensor; N] + Send + Sync,
{
    fn execute(
        &self,
        handles: &mut HandleContainer<CubeFusionHandle>,
    ) -> Result<(), ExecutionError> {
        // A CubeCL tensor is the same buffer whatever its kind, so the integer getter serves
        // every input.
        let inputs: Vec<CubeTensor> = self
            .inputs
            .iter()
            .map(|input| handles.get_int_tensor::<CubeBackend>(input))
            .collect();
        let outputs = (self.launch)(&inputs, &self.shapes);
        for (ir, tensor) in self.outputs.iter().zip(outputs) {
            handles.register_float_tensor::<CubeBackend>(&ir.id, tensor);
        }
        Ok(())
    }
}
