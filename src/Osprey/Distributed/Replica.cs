using System.Diagnostics;
using Osprey.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Distributed;

/// <summary>Where one <see cref="Replica.AverageGradients"/> spent its time (for the DDP benchmark's breakdown).</summary>
/// <param name="CopyInSeconds">Putting back gradients something replaced (normally nothing: backward writes into the buckets).</param>
/// <param name="ReduceStart"><see cref="Stopwatch"/> timestamp at which the first bucket's all-reduce started.</param>
/// <param name="ReduceEnd">Timestamp at which the last bucket's all-reduce (with its division) returned.</param>
public readonly record struct GradientSyncTimes(double CopyInSeconds, long ReduceStart, long ReduceEnd);

/// <summary>
/// One rank's replica of the model, as PyTorch DDP wraps it: built from rank 0's parameters and buffers (broadcast), the
/// gradients averaged over the ranks on the optimiser micro-step only, in fixed-order buckets of at most
/// <see cref="DefaultBucketBytes"/> that are slices of the optimiser's flat gradient buffers (<see cref="FlatParameters"/>:
/// backward accumulates into them, so nothing is copied), and BatchNorm either synchronised (<c>sync_bn=True</c>,
/// <see cref="SyncBatchNorm"/>) or its statistics re-broadcast from rank 0 before each forward (DDP's
/// <c>broadcast_buffers=True</c>) so that the EMA follows identical states on every rank. In one process every call is
/// the identity.
/// </summary>
public sealed class Replica : IDisposable
{
    /// <summary>Bucket capacity, as DDP's <c>bucket_cap_mb</c> (25 MB).</summary>
    public const long DefaultBucketBytes = 25L * 1024 * 1024;

    readonly DataParallel _parallel;
    readonly FlatParameters _flat;
    readonly List<Tensor> _buckets = new();          // ≤ BucketBytes slices of the flat gradient buffers, in group order
    readonly SyncBatchNorm? _syncBatchNorm;
    readonly bool _broadcastBuffers;

    internal Replica(nn.Module model, DataParallel parallel, FlatParameters flat, bool syncBatchNorm, long bucketBytes)
    {
        if (bucketBytes <= 0) throw new ArgumentOutOfRangeException(nameof(bucketBytes), bucketBytes, "bucket capacity must be positive");
        _parallel = parallel;
        _flat = flat;
        parallel.BroadcastModule(model);                                 // every rank starts from rank 0's weights
        foreach (FlatGroup layout in flat.Groups)
        {
            long chunk = Math.Max(1, bucketBytes / layout.Gradients.element_size());
            for (long offset = 0; offset < layout.Count; offset += chunk)
                _buckets.Add(layout.Gradients.narrow(0, offset, Math.Min(chunk, layout.Count - offset)).DetachFromDisposeScope());
        }
        if (!parallel.Communicates) return;
        _syncBatchNorm = syncBatchNorm ? new SyncBatchNorm(model, parallel.Group) : null;
        _broadcastBuffers = !syncBatchNorm && flat.Buffers is not null;
    }

    /// <summary>The gradient buckets' sizes in bytes, in all-reduce order (for logs and benchmarks; also in one process, where
    /// nothing is reduced).</summary>
    public IReadOnlyList<long> Buckets => _buckets.Select(b => b.numel() * b.element_size()).ToArray();

    /// <summary>Where the last <see cref="AverageGradients"/> spent its time (zero before the first, and in one process).</summary>
    public GradientSyncTimes LastSync { get; private set; }

    /// <summary>Before each forward: rank 0's BatchNorm statistics on every rank (without <c>sync_bn</c>; one flat buffer).</summary>
    public void BeforeForward()
    {
        if (!_broadcastBuffers) return;
        using var noGrad = no_grad();
        _parallel.Group.Broadcast(_flat.Buffers!.Values, root: 0);     // the statistics are views of it: nothing to copy
    }

    /// <summary>
    /// The loss that backward runs on. Each rank's loss is (Σ rank terms / S)·rank batch, with S the global target-score
    /// sum (<see cref="DataParallel.SumOverRanks(Tensor)"/>); × W² makes it (Σ rank terms / S)·W·global batch, so that the
    /// average of the W ranks' gradients equals the one-process gradient (Σ terms / S)·global batch.
    /// </summary>
    /// <remarks>In the last global batch of an epoch the ranks' shares may differ (<see cref="Data.DistributedSampler"/>):
    /// with <paramref name="rankBatch"/> of the <paramref name="globalBatch"/> images here, × W · global / rank batch makes
    /// each rank's loss (Σ rank terms / S)·W·global batch all the same; a rank with no image contributes zeros.</remarks>
    public Tensor ScaleLoss(Tensor loss, long rankBatch = 0, long globalBatch = 0)
    {
        if (!_parallel.Communicates) return loss;
        int world = _parallel.World;
        return loss * (rankBatch > 0 && globalBatch > 0 ? world * (double)globalBatch / rankBatch : (double)(world * world));   // equal shares: W²
    }

    /// <summary>
    /// The loss items (box, cls, dfl) summed over the ranks: the global batch's, the same on every rank (for the logs and
    /// the finite check). A lap of <see cref="StepPhase.AllReduce"/> when the ranks communicate.
    /// </summary>
    public (float Box, float Cls, float Dfl) SumItems((float Box, float Cls, float Dfl) local, IStepClock clock)
    {
        if (!_parallel.Communicates) return local;
        double[] sums = _parallel.SumOverRanks(new double[] { local.Box, local.Cls, local.Dfl });
        clock.Lap(StepPhase.AllReduce);
        return ((float)sums[0], (float)sums[1], (float)sums[2]);
    }

    /// <summary>The loss items summed over the ranks (one all-reduce), as <see cref="SumItems((float Box, float Cls, float Dfl), IStepClock)"/>
    /// for any number of items (the detection loss's and its extra terms').</summary>
    public double[] SumItems(double[] local, IStepClock clock)
    {
        if (!_parallel.Communicates) return local;
        double[] sums = _parallel.SumOverRanks(local);
        clock.Lap(StepPhase.AllReduce);
        return sums;
    }

    /// <summary>
    /// Averages every gradient over the ranks (call after backward on the optimiser micro-step only: accumulation
    /// micro-steps add into the buffers locally): all-reduce Average of each bucket in place, in a fixed order. A lap of
    /// <see cref="StepPhase.AllReduce"/> when the ranks communicate.
    /// </summary>
    public void AverageGradients(IStepClock clock)
    {
        if (!_parallel.Communicates) return;
        using var noGrad = no_grad();
        long start = Stopwatch.GetTimestamp();
        _flat.AttachGradients();                                         // a gradient something replaced is copied back in
        long attached = Stopwatch.GetTimestamp();
        foreach (Tensor bucket in _buckets) _parallel.Group.AllReduce(bucket, ReduceOp.Average);
        LastSync = new GradientSyncTimes(Stopwatch.GetElapsedTime(start, attached).TotalSeconds, attached, Stopwatch.GetTimestamp());
        clock.Lap(StepPhase.AllReduce);
    }

    /// <summary>Detaches SyncBatchNorm and frees the bucket views (the group and the flat buffers belong to others).</summary>
    public void Dispose()
    {
        _syncBatchNorm?.Dispose();
        foreach (Tensor bucket in _buckets) bucket.Dispose();
    }
}
