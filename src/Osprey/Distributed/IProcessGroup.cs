using TorchSharp;

namespace Osprey.Distributed;

/// <summary>
/// The ranks of one data-parallel job and the collectives between them (torch.distributed's process group).
/// Every rank must call the same collectives in the same order with tensors of the same shape and dtype;
/// a rank that does not arrive makes the others fail after <see cref="Timeout"/>.
/// Supported dtypes: float32, bfloat16, float16, float64, int32, int64 (reductions on int types: Sum and Max).
/// </summary>
/// <remarks>
/// The trainer's gradient sync is expected to flatten gradients into buckets (contiguous 1-D tensors of a few
/// tens of MB) and call <see cref="AllReduce"/> with <see cref="ReduceOp.Average"/> on each bucket.
/// After a failure (timeout, dead peer) the group is unusable: call <see cref="Abort"/> to end the job.
/// </remarks>
public interface IProcessGroup : IDisposable
{
    /// <summary>This process's rank, 0 ≤ Rank &lt; WorldSize. Rank 0 is the master (logging, checkpoints).</summary>
    int Rank { get; }

    /// <summary>Number of ranks in the job.</summary>
    int WorldSize { get; }

    /// <summary>Backend name: <c>mpi</c>, <c>nccl</c> or <c>single</c>.</summary>
    string Backend { get; }

    /// <summary>
    /// True for a real backend (MPI, NCCL), even in a world of one (<see cref="ProcessGroupFactory.BackendVariable"/>):
    /// data parallel then runs every collective, as PyTorch DDP does at world size 1. False for <see cref="SingleProcessGroup"/>,
    /// whose collectives the trainer skips.
    /// </summary>
    bool Communicates { get; }

    /// <summary>
    /// How long one collective may wait for the other ranks before it throws <see cref="DistributedException"/>.
    /// <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> waits forever (MPI: uses blocking calls).
    /// </summary>
    TimeSpan Timeout { get; set; }

    /// <summary>
    /// Reduces <paramref name="tensor"/> over all ranks in place: afterwards every rank holds the same result.
    /// </summary>
    /// <remarks>note: blocks until every rank arrives (MPI) or until the work is enqueued on the stream (NCCL).</remarks>
    void AllReduce(torch.Tensor tensor, ReduceOp op = ReduceOp.Sum);

    /// <summary>Copies <paramref name="tensor"/> of rank <paramref name="root"/> into the same tensor of every other rank.</summary>
    /// <remarks>note: blocks until every rank arrives.</remarks>
    void Broadcast(torch.Tensor tensor, int root = 0);

    /// <summary>
    /// Gathers every rank's <paramref name="input"/> (same shape on all ranks) and returns them concatenated along
    /// dim 0 in rank order: shape <c>(WorldSize * input.shape[0], ...)</c>; a 0-d input gives shape <c>(WorldSize)</c>.
    /// </summary>
    /// <remarks>note: blocks until every rank arrives; allocates WorldSize times the input.</remarks>
    torch.Tensor AllGather(torch.Tensor input);

    /// <summary>Returns only when every rank has called it.</summary>
    /// <remarks>note: blocks until every rank arrives.</remarks>
    void Barrier();

    /// <summary>
    /// Ends the whole job now: every rank exits with a non-zero code (MPI_Abort; NCCL: communicator abort and exit).
    /// Call it after a <see cref="DistributedException"/> so that no rank waits forever. Does not return.
    /// </summary>
    void Abort(int exitCode = 1);
}
