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
use burn_fusion::{ExecutionError, get_client};
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
    let fusion = get_client::<CubeBackend>(device);
    let out = TensorIr::uninit(fusion.create_empty_handle(), Shape::from(shape), DType::F32);
    let registered = fusion
        .register(
            StreamId::current(),
            OperationIr::Custom(CustomOpIr::new(name, &[], std::slice::from_ref(&out))),
            KernelOperation {
                out,
                device: device.clone(),
                launch,
            },
        )
        .output();
    Tensor::from_primitive::<burn_cubecl::Cube>(registered)
}

/// A kernel launch as a fusion operation, writing its output tensor.
struct KernelOperation<F> {
    out: TensorIr,
    device: CubeDevice,
    launch: F,
}

impl<F> std::fmt::Debug for KernelOperation<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelOperation")
            .field("out", &self.out)
            .finish_non_exhaustive()
    }
}

impl<F> Operation<FusionCubeRuntime> for KernelOperation<F>
where
    F: Fn(&Client) -> Handle + Send + Sync,
{
    fn execute(
        &self,
        handles: &mut HandleContainer<CubeFusionHandle>,
    ) -> Result<(), ExecutionError> {
        let client = self.device.client();
        let handle = (self.launch)(&client);
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
