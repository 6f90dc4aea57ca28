using TorchSharp;

namespace Osprey.Distributed;

/// <summary>
/// Non-blocking all-reduces on a communicator of their own (so that their order is independent of the group's other
/// collectives, e.g. SyncBatchNorm's all-reduces inside backward): start one, keep computing, finish it later.
/// Every rank must start the same all-reduces in the same order with tensors of the same size.
/// From <see cref="IProcessGroup.OpenAllReduceChannel"/>; dispose it (collectively) when done.
/// </summary>
public interface IAllReduceChannel : IDisposable
{
    /// <summary>
    /// Starts reducing <paramref name="tensor"/> (contiguous, float32 or float64) in place. Do not touch the tensor
    /// until <see cref="IPendingAllReduce.Wait"/> returns.
    /// </summary>
    IPendingAllReduce Start(torch.Tensor tensor, ReduceOp op);

    /// <summary>Lets started all-reduces advance (MPI progresses only inside MPI calls); never blocks.</summary>
    void Progress();
}

/// <summary>An all-reduce in flight.</summary>
public interface IPendingAllReduce
{
    /// <summary>Waits until the result is in the tensor (Average: divided by the world size), or the group's
    /// timeout passes (<see cref="DistributedException"/>).</summary>
    void Wait();
}
