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

    /// <summary>
    /// Post-backward sync keeps the gradients in the buckets (DDP's <c>gradient_as_bucket_view=True</c>): each parameter's
    /// <c>.grad</c> is a view of its bucket's flat buffer, so backward accumulates into the buffer and nothing is copied
    /// in or out. Measured faster on CPU ranks (src/Osprey/Distributed/README.md), the same bits.
    /// </summary>
    public const bool DefaultGradientAsBucketView = true;

    readonly nn.Module _model;
    readonly List<Parameter> _parameters;
    readonly List<Bucket> _buckets = new();
    readonly Tensor[] _buffers;
    readonly GradientOverlap? _overlap;
    readonly FlatParameters? _flat;                  // the optimiser's flat gradients, all-reduced in place
    readonly List<Tensor> _flatBuckets = new();      // ≤ bucketBytes slices of _flat's gradient buffers
    readonly FlatBuffers? _flatBuffers;              // the floating buffers as one tensor, when laid out flat

    /// <summary>Wraps <paramref name="model"/> (already on its device) for <paramref name="group"/>.</summary>
    /// <param name="model">The replica.</param>
    /// <param name="group">The ranks.</param>
    /// <param name="bucketBytes">Bucket capacity in bytes.</param>
    /// <param name="sync">When to all-reduce; <see cref="GradientSync.Overlapped"/> falls back to post-backward where
    /// the group or the gradients do not allow it (<see cref="Sync"/>, <see cref="SyncNote"/>). Collective for
    /// <see cref="GradientSync.Overlapped"/> (it opens a communicator).</param>
    /// <param name="gradientAsBucketView">Post-backward sync: gradients as views of the flat bucket buffers
    /// (<see cref="DefaultGradientAsBucketView"/>); false copies them into and out of the buckets.</param>
    /// <param name="flat">The optimiser's flat layout of the trainable parameters, or null. With bucket views and
    /// post-backward sync the buckets are then slices of its gradient buffers (in its group order), so the gradients
    /// backward wrote are all-reduced where the optimiser reads them.</param>
    public DataParallel(nn.Module model, IProcessGroup group, long bucketBytes = DefaultBucketBytes, GradientSync sync = DefaultSync,
        bool gradientAsBucketView = DefaultGradientAsBucketView, FlatParameters? flat = null)
    {
        if (bucketBytes <= 0) throw new ArgumentOutOfRangeException(nameof(bucketBytes), bucketBytes, "bucket capacity must be positive");
        _model = model;
        Group = group;
        _parameters = model.parameters().Where(p => p.requires_grad).ToList();
        _buffers = model.buffers().Where(b => b.is_floating_point()).ToArray();
        _flatBuffers = flat?.Buffers is { } fb && fb.Names.Count == _buffers.Length ? fb : null;
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
        // Views need one dtype and device per bucket and contiguous parameters (the view has the parameter's strides).
        GradientAsBucketView = gradientAsBucketView && _overlap is null && group.Communicates && _buckets.All(b =>
            b.Parameters.All(p => p.dtype == b.Parameters[0].dtype && p.device_type == b.Parameters[0].device_type &&
                                 p.device_index == b.Parameters[0].device_index && p.is_contiguous()));
        if (GradientAsBucketView && flat is not null)
        {
            _flat = flat;
            foreach (FlatGroup layout in flat.Groups)
            {
                long chunk = Math.Max(1, bucketBytes / layout.Gradients.element_size());
                for (long offset = 0; offset < layout.Count; offset += chunk)
                    _flatBuckets.Add(layout.Gradients.narrow(0, offset, Math.Min(chunk, layout.Count - offset)).DetachFromDisposeScope());
            }
        }
        else if (GradientAsBucketView)
            foreach (Bucket bucket in _buckets) bucket.AllocateFlat();
    }

    /// <summary>The buckets are slices of the optimiser's flat gradient buffers (<see cref="FlatParameters"/>).</summary>
    public bool UsesFlatGradients => _flat is not null;

    /// <summary>Gradients live in the flat bucket buffers (<see cref="DefaultGradientAsBucketView"/>; post-backward sync, world &gt; 1).</summary>
    public bool GradientAsBucketView { get; }

    /// <summary>Where the last <see cref="AverageGradients"/> spent its time (all zero before the first, and at world 1).</summary>
    public GradientSyncTimes LastSync { get; private set; }

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
    public IReadOnlyList<long> BucketBytes => _flat is not null
        ? _flatBuckets.Select(b => b.numel() * b.element_size()).ToArray()
        : _buckets.Select(b => b.Bytes).ToArray();

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
        using var noGrad = no_grad();
        if (_flatBuffers is not null)
        {
            Group.Broadcast(_flatBuffers.Values, root: 0);              // the buffers are views of it: nothing to copy
            return;
        }
        using var scope = NewDisposeScope();
        var flat = cat(_buffers.Select(b => b.reshape(-1)).ToArray());
        Group.Broadcast(flat, root: 0);
        if (Rank == 0) return;                                           // the root's buffers are what it sent
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
    /// micro-steps neither mark nor communicate. With <see cref="GradientAsBucketView"/>, gradients the optimiser set
    /// to null become views of zeroed bucket buffers again (so backward writes into the buckets).
    /// </summary>
    public void BeginMicroStep(bool synchronize)
    {
        if (GradientAsBucketView && _flat is null) AttachGradientViews();   // flat: the optimiser zeroes its buffers
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
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        if (_overlap is { Armed: true })
        {
            _overlap.Finish();
            long end = System.Diagnostics.Stopwatch.GetTimestamp();
            AllReduceSeconds += System.Diagnostics.Stopwatch.GetElapsedTime(start, end).TotalSeconds;
            LastSync = new GradientSyncTimes(0, 0, start, end);
            return;
        }
        using var noGrad = no_grad();
        if (_flat is not null)
        {
            _flat.AttachGradients();                                     // a gradient something replaced is copied back in
            long attached = System.Diagnostics.Stopwatch.GetTimestamp();
            foreach (Tensor bucket in _flatBuckets) Group.AllReduce(bucket, ReduceOp.Average);
            long reduced = System.Diagnostics.Stopwatch.GetTimestamp();
            AllReduceSeconds += System.Diagnostics.Stopwatch.GetElapsedTime(start, reduced).TotalSeconds;
            LastSync = new GradientSyncTimes(System.Diagnostics.Stopwatch.GetElapsedTime(start, attached).TotalSeconds, 0, attached, reduced);
            return;
        }
        double copyIn = 0, copyOut = 0;
        long reduceStart = 0, reduceEnd = 0;
        foreach (Bucket bucket in _buckets)
        {
            using var scope = NewDisposeScope();
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            var flat = GradientAsBucketView
                ? GatherIntoFlat(bucket)
                : cat(bucket.Parameters.Select(p => p.grad is null ? zeros(p.numel(), dtype: p.dtype, device: p.device) : p.grad.reshape(-1)).ToArray());
            long t1 = System.Diagnostics.Stopwatch.GetTimestamp();
            Group.AllReduce(flat, ReduceOp.Average);
            long t2 = System.Diagnostics.Stopwatch.GetTimestamp();
            if (!GradientAsBucketView)
            {
                long offset = 0;
                foreach (Parameter p in bucket.Parameters)
                {
                    var slice = flat.narrow(0, offset, p.numel()).view_as(p);
                    if (p.grad is null) p.grad = slice.clone().DetachFromDisposeScope();
                    else p.grad.copy_(slice);
                    offset += p.numel();
                }
            }
            long t3 = System.Diagnostics.Stopwatch.GetTimestamp();
            copyIn += System.Diagnostics.Stopwatch.GetElapsedTime(t0, t1).TotalSeconds;
            copyOut += System.Diagnostics.Stopwatch.GetElapsedTime(t2, t3).TotalSeconds;
            if (reduceStart == 0) reduceStart = t1;
            reduceEnd = t2;
        }
        AllReduceSeconds += System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
        LastSync = new GradientSyncTimes(copyIn, copyOut, reduceStart, reduceEnd);
    }

    // Bucket views: every gradient the bucket's parameters hold is normally its view already (nothing to do). A gradient
    // that is not (a caller replaced it, or zero_grad ran after BeginMicroStep) is copied in and replaced by its view; a
    // missing one gets zeros. Returns the flat buffer (owned by the bucket: not in the dispose scope).
    Tensor GatherIntoFlat(Bucket bucket)
    {
        for (int i = 0; i < bucket.Parameters.Length; i++)
        {
            Parameter p = bucket.Parameters[i];
            using Tensor? grad = p.grad;
            if (grad is not null && grad.numel() > 0 && grad.is_contiguous() && TensorMemory.DataPointer(grad) == bucket.ViewAddress(i)) continue;
            using var view = bucket.View(i);
            if (grad is null) view.zero_();
            else view.copy_(grad);
            p.grad = view;
        }
        return bucket.Flat!;
    }

    // Gradients set to null (the optimiser's zero_grad) become views of their zeroed bucket; others are left alone.
    void AttachGradientViews()
    {
        using var noGrad = no_grad();
        foreach (Bucket bucket in _buckets)
        {
            bool anyMissing = false, allMissing = true;
            foreach (Parameter p in bucket.Parameters)
            {
                using Tensor? grad = p.grad;
                anyMissing |= grad is null;
                allMissing &= grad is null;
            }
            if (!anyMissing) continue;
            if (allMissing) bucket.Flat!.zero_();
            for (int i = 0; i < bucket.Parameters.Length; i++)
            {
                Parameter p = bucket.Parameters[i];
                using Tensor? grad = p.grad;
                if (grad is not null) continue;
                using var view = bucket.View(i);
                if (!allMissing) view.zero_();
                p.grad = view;
            }
        }
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

    /// <summary>Removes the overlap hooks and frees its buffers and communicator, and the bucket buffers (the group belongs
    /// to the caller; gradients that are bucket views keep their buffer alive until they are dropped).</summary>
    public void Dispose()
    {
        _overlap?.Dispose();
        foreach (Bucket bucket in _buckets) bucket.Flat?.Dispose();
        foreach (Tensor slice in _flatBuckets) slice.Dispose();
    }

    sealed class Bucket(Parameter[] parameters)
    {
        long[] _offsets = Array.Empty<long>();
        IntPtr _address;

        public Parameter[] Parameters { get; } = parameters;

        public long Bytes { get; } = parameters.Sum(p => p.numel() * p.element_size());

        /// <summary>The persistent flat buffer (bucket views only).</summary>
        public Tensor? Flat { get; private set; }

        public void AllocateFlat()
        {
            _offsets = new long[Parameters.Length];
            long offset = 0;
            for (int i = 0; i < Parameters.Length; i++)
            {
                _offsets[i] = offset;
                offset += Parameters[i].numel();
            }
            Parameter first = Parameters[0];
            Flat = zeros(offset, dtype: first.dtype, device: first.device).DetachFromDisposeScope();
            _address = offset > 0 ? TensorMemory.DataPointer(Flat) : IntPtr.Zero;
        }

        /// <summary>Parameter <paramref name="i"/>'s gradient as a view of <see cref="Flat"/> (the caller disposes the handle).</summary>
        public Tensor View(int i) => Flat!.narrow(0, _offsets[i], Parameters[i].numel()).view_as(Parameters[i]).DetachFromDisposeScope();

        /// <summary>Address of parameter <paramref name="i"/>'s view.</summary>
        public IntPtr ViewAddress(int i) => _address + checked((nint)(_offsets[i] * Flat!.element_size()));
    }
}
