using System.Text;
using Osprey.Distributed;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// PyTorch DDP's role for the trainer: one replica per rank, the same start everywhere (parameters and buffers
/// broadcast from rank 0), gradients averaged over ranks in fixed-order flat buckets on the optimiser micro-step only
/// (after backward, or overlapped with it: <see cref="GradientSync"/>), and (without SyncBatchNorm) BatchNorm buffers re-broadcast from rank 0 before each
/// forward (DDP's <c>broadcast_buffers=True</c>) so that the EMA follows identical states on every rank.
/// A world of one makes every call a no-op.
/// </summary>
public sealed class DataParallel : IDisposable
{
    /// <summary>Bucket capacity, as DDP's <c>bucket_cap_mb</c> (25 MB).</summary>
    public const long DefaultBucketBytes = 25L * 1024 * 1024;

    /// <summary>The default gradient sync: post-backward, measured faster on CPU ranks (src/Osprey/Distributed/README.md).</summary>
    public const GradientSync DefaultSync = GradientSync.PostBackward;

    readonly nn.Module _model;
    readonly List<Parameter> _parameters;
    readonly List<Bucket> _buckets = new();
    readonly Tensor[] _buffers;
    readonly GradientOverlap? _overlap;

    /// <summary>Wraps <paramref name="model"/> (already on its device) for <paramref name="group"/>.</summary>
    /// <param name="model">The replica.</param>
    /// <param name="group">The ranks.</param>
    /// <param name="bucketBytes">Bucket capacity in bytes.</param>
    /// <param name="sync">When to all-reduce; <see cref="GradientSync.Overlapped"/> falls back to post-backward where
    /// the group or the gradients do not allow it (<see cref="Sync"/>, <see cref="SyncNote"/>). Collective for
    /// <see cref="GradientSync.Overlapped"/> (it opens a communicator).</param>
    public DataParallel(nn.Module model, IProcessGroup group, long bucketBytes = DefaultBucketBytes, GradientSync sync = DefaultSync)
    {
        if (bucketBytes <= 0) throw new ArgumentOutOfRangeException(nameof(bucketBytes), bucketBytes, "bucket capacity must be positive");
        _model = model;
        Group = group;
        _parameters = model.parameters().Where(p => p.requires_grad).ToList();
        _buffers = model.buffers().Where(b => b.is_floating_point()).ToArray();
        // Fixed order (reverse registration, as DDP: the last layers' gradients are ready first).
        var current = new List<Parameter>();
        long bytes = 0;
        foreach (Parameter p in Enumerable.Reverse(_parameters))
        {
            long size = p.numel() * p.element_size();
            if (current.Count > 0 && bytes + size > bucketBytes)
            {
                _buckets.Add(new Bucket(current.ToArray()));
                current.Clear();
                bytes = 0;
            }
            current.Add(p);
            bytes += size;
        }
        if (current.Count > 0) _buckets.Add(new Bucket(current.ToArray()));
        if (sync == GradientSync.Overlapped && group.Communicates)
        {
            var position = new Dictionary<Parameter, int>(ReferenceEqualityComparer.Instance);
            for (int i = 0; i < _parameters.Count; i++) position[_parameters[i]] = i;
            int[][] indices = _buckets.Select(b => b.Parameters.Select(p => position[p]).ToArray()).ToArray();
            _overlap = GradientOverlap.TryCreate(model, group, _parameters.ToArray(), indices, out string? reason);
            SyncNote = reason is null ? null : $"overlapped gradient sync unavailable ({reason}): all-reduce after backward";
        }
        Sync = _overlap is null ? GradientSync.PostBackward : GradientSync.Overlapped;
    }

    /// <summary>The gradient sync in use.</summary>
    public GradientSync Sync { get; }

    /// <summary>Why <see cref="GradientSync.Overlapped"/> was asked for but is not used; null otherwise.</summary>
    public string? SyncNote { get; }

    /// <summary>Overlapped sync: the modules whose backward signals gradient readiness (0 otherwise).</summary>
    public int ReadinessMarkers => _overlap?.Markers ?? 0;

    /// <summary>Overlapped sync: what happened during the last synchronised micro-step (empty otherwise).</summary>
    public IReadOnlyList<GradientSyncEvent> LastSyncEvents => _overlap?.Events ?? Array.Empty<GradientSyncEvent>();

    /// <summary>The process group.</summary>
    public IProcessGroup Group { get; }

    /// <summary>Number of ranks.</summary>
    public int WorldSize => Group.WorldSize;

    /// <summary>This rank.</summary>
    public int Rank => Group.Rank;

    /// <summary>Rank 0: the only rank that writes files and reports events.</summary>
    public bool IsMaster => Group.Rank == 0;

    /// <summary>Gradient buckets (count and bytes, for logs and benchmarks).</summary>
    public IReadOnlyList<long> BucketBytes => _buckets.Select(b => b.Bytes).ToArray();

    /// <summary>Seconds spent in gradient all-reduce after backward so far (including copies in and out of the buckets;
    /// overlapped sync: only what remains after backward).</summary>
    public double AllReduceSeconds { get; private set; }

    /// <summary>Copies rank 0's parameters and buffers to every rank (DDP's constructor).</summary>
    public void BroadcastState()
    {
        BroadcastModule(_model, Group);
    }

    /// <summary>Copies rank 0's floating-point buffers (BatchNorm statistics) to every rank.</summary>
    public void BroadcastBuffers()
    {
        if (!Group.Communicates || _buffers.Length == 0) return;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var flat = cat(_buffers.Select(b => b.reshape(-1)).ToArray());
        Group.Broadcast(flat, root: 0);
        long offset = 0;
        foreach (Tensor b in _buffers)
        {
            b.copy_(flat.narrow(0, offset, b.numel()).view_as(b));
            offset += b.numel();
        }
    }

    /// <summary>
    /// Call before each micro-step's forward: <paramref name="synchronize"/> is true on the optimiser micro-step (whose
    /// <see cref="AverageGradients"/> follows backward). Overlapped sync arms its readiness markers then; accumulation
    /// micro-steps neither mark nor communicate. Post-backward sync ignores it.
    /// </summary>
    public void BeginMicroStep(bool synchronize)
    {
        if (_overlap is null || !synchronize) return;
        _overlap.Arm(); // throws when the previous synchronised micro-step did not call AverageGradients
    }

    /// <summary>
    /// Averages every trainable parameter's gradient over the ranks, bucket by bucket in a fixed order. A parameter
    /// without a gradient contributes zeros (and gets them), so every rank reduces the same layout. After an armed
    /// <see cref="BeginMicroStep"/> (overlapped sync) this finishes the all-reduces started during backward.
    /// </summary>
    public void AverageGradients()
    {
        if (!Group.Communicates) return;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        if (_overlap is { Armed: true })
        {
            _overlap.Finish();
            AllReduceSeconds += watch.Elapsed.TotalSeconds;
            return;
        }
        using var noGrad = no_grad();
        foreach (Bucket bucket in _buckets)
        {
            using var scope = NewDisposeScope();
            var flat = cat(bucket.Parameters.Select(p => p.grad is null ? zeros(p.numel(), dtype: p.dtype, device: p.device) : p.grad.reshape(-1)).ToArray());
            Group.AllReduce(flat, ReduceOp.Average);
            long offset = 0;
            foreach (Parameter p in bucket.Parameters)
            {
                var slice = flat.narrow(0, offset, p.numel()).view_as(p);
                if (p.grad is null) p.grad = slice.clone().DetachFromDisposeScope();
                else p.grad.copy_(slice);
                offset += p.numel();
            }
        }
        AllReduceSeconds += watch.Elapsed.TotalSeconds;
    }

    /// <summary>Σ over ranks of <paramref name="values"/> (float64, in place on a copy); the values on one rank.</summary>
    public double[] SumOverRanks(double[] values)
    {
        if (!Group.Communicates) return values.ToArray();
        using var t = tensor(values, dtype: ScalarType.Float64);
        Group.AllReduce(t, ReduceOp.Sum);
        return t.data<double>().ToArray();
    }

    /// <summary>Rank 0's value of <paramref name="value"/> on every rank.</summary>
    public bool BroadcastFlag(bool value) => BroadcastFlag(Group, value);

    /// <summary>Rank 0's value of <paramref name="value"/> on every rank of <paramref name="group"/>.</summary>
    public static bool BroadcastFlag(IProcessGroup group, bool value)
    {
        if (!group.Communicates) return value;
        using var t = tensor(new long[] { value ? 1 : 0 });
        group.Broadcast(t, root: 0);
        return t.data<long>()[0] != 0;
    }

    /// <summary>Rank 0's <paramref name="text"/> on every rank of <paramref name="group"/> (e.g. the run folder rank 0 created).</summary>
    public static string BroadcastString(IProcessGroup group, string? text)
    {
        if (!group.Communicates) return text ?? "";
        byte[] bytes = group.Rank == 0 ? Encoding.UTF8.GetBytes(text ?? "") : Array.Empty<byte>();
        using var length = tensor(new long[] { bytes.Length });
        group.Broadcast(length, root: 0);
        int n = (int)length.data<long>()[0];
        if (n == 0) return "";
        using var data = group.Rank == 0 ? tensor(bytes.Select(b => (int)b).ToArray()) : zeros(n, dtype: ScalarType.Int32);
        group.Broadcast(data, root: 0);
        return Encoding.UTF8.GetString(data.data<int>().ToArray().Select(v => (byte)v).ToArray());
    }

    /// <summary>Copies rank 0's whole state (parameters and buffers) of <paramref name="module"/> to every rank.</summary>
    public static void BroadcastModule(nn.Module module, IProcessGroup group)
    {
        if (!group.Communicates) return;
        using var noGrad = no_grad();
        foreach (var (_, tensor) in module.state_dict()) group.Broadcast(tensor, root: 0);
    }

    /// <summary>Removes the overlap hooks and frees its buffers and communicator (the group belongs to the caller).</summary>
    public void Dispose() => _overlap?.Dispose();

    sealed class Bucket(Parameter[] parameters)
    {
        public Parameter[] Parameters { get; } = parameters;

        public long Bytes { get; } = parameters.Sum(p => p.numel() * p.element_size());
    }
}
