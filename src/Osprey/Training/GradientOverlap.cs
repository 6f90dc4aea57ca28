using Osprey.Distributed;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// <see cref="GradientSync.Overlapped"/>: starts each gradient bucket's all-reduce during backward, as soon as the
/// bucket's gradients are final. TorchSharp 0.107 has no tensor or gradient-accumulator hooks, so readiness comes from
/// a custom autograd function: on an armed (synchronised) micro-step a forward pre-hook on every module that owns
/// trainable parameters (Conv2d, BatchNorm2d, …) passes the module's input through an identity function whose backward
/// runs once the gradient has gone through the whole module. By then the module's parameter gradients are accumulated:
/// libtorch runs gradient-accumulation nodes before any other ready node. A module called k times waits for k
/// backward calls; parameters of modules that were not called, or whose input needs no gradient (the first
/// convolution), or of other module types are simply final when backward returns, where <see cref="Finish"/> starts
/// every bucket not started yet. Buckets start strictly in their fixed order, on a communicator of their own (so
/// SyncBatchNorm's all-reduces inside backward cannot interleave with them differently on different ranks).
/// </summary>
internal sealed class GradientOverlap : IDisposable
{
    readonly Parameter[] _parameters;
    readonly int[][] _buckets;                 // parameter indices per bucket, in bucket order
    readonly int[] _bucketOf;                  // parameter index → bucket
    readonly Tensor[] _flat;                   // one persistent flat buffer per bucket
    readonly IAllReduceChannel _channel;
    readonly List<Action> _unhook = new();
    readonly int[] _uses;                      // per parameter: armed forward calls whose backward has not run yet
    readonly int[] _waiting;                   // per bucket: parameters not final yet
    readonly IPendingAllReduce?[] _pending;
    readonly List<GradientSyncEvent> _events = new();
    int _next;                                 // next bucket to start
    bool _armed;

    GradientOverlap(nn.Module model, Parameter[] parameters, int[][] buckets, IAllReduceChannel channel)
    {
        _parameters = parameters;
        _buckets = buckets;
        _channel = channel;
        _bucketOf = new int[parameters.Length];
        for (int b = 0; b < buckets.Length; b++)
            foreach (int i in buckets[b]) _bucketOf[i] = b;
        _flat = buckets.Select(indices => empty(indices.Sum(i => parameters[i].numel()), dtype: parameters[indices[0]].dtype)
            .DetachFromDisposeScope()).ToArray();
        _uses = new int[parameters.Length];
        _waiting = new int[buckets.Length];
        _pending = new IPendingAllReduce?[buckets.Length];

        var index = new Dictionary<string, int>();
        int k = 0;
        foreach (var (name, p) in model.named_parameters())
            if (p.requires_grad) index[name] = k++;
        int marker = 0;
        foreach (var (prefix, module) in model.named_modules())
        {
            int[] owned = module.named_parameters(recurse: false)
                .Where(np => np.parameter.requires_grad)
                .Select(np => index[prefix.Length == 0 ? np.name : $"{prefix}.{np.name}"]).ToArray();
            if (owned.Length == 0 || module is not nn.Module<Tensor, Tensor> single) continue;
            int id = marker++;
            var hook = single.register_forward_pre_hook((_, input) => Enter(input, owned, id)!);
            _unhook.Add(hook.remove);
        }
        Markers = marker;
    }

    /// <summary>Overlap for <paramref name="parameters"/> (the trainable ones, in registration order) split into
    /// <paramref name="buckets"/>, or null (with the reason) when the group or the gradients do not allow it.</summary>
    public static GradientOverlap? TryCreate(nn.Module model, IProcessGroup group, Parameter[] parameters, int[][] buckets,
        out string? reason)
    {
        reason = null;
        if (parameters.Any(p => p.device_type != DeviceType.CPU))
            reason = "gradients are not on the CPU (NCCL enqueues on the CUDA stream and TorchSharp has no side streams)";
        else if (buckets.Any(b => b.Select(i => parameters[i].dtype).Distinct().Count() != 1 ||
                                  parameters[b[0]].dtype is not (ScalarType.Float32 or ScalarType.Float64)))
            reason = "a bucket mixes dtypes or is not float32/float64";
        if (reason is not null) return null;
        // note: collective (MPI_Comm_dup); every rank reaches this point with the same model and backend.
        IAllReduceChannel? channel = group.OpenAllReduceChannel();
        if (channel is null)
        {
            reason = $"the {group.Backend} group has no non-blocking all-reduce channel";
            return null;
        }
        return new GradientOverlap(model, parameters, buckets, channel);
    }

    /// <summary>Modules whose input carries a readiness marker.</summary>
    public int Markers { get; }

    /// <summary>True between <see cref="Arm"/> and <see cref="Finish"/>.</summary>
    public bool Armed => _armed;

    /// <summary>The last synchronised micro-step's events, in order.</summary>
    public IReadOnlyList<GradientSyncEvent> Events => _events;

    /// <summary>Call before the forward of a micro-step whose backward must synchronise.</summary>
    public void Arm()
    {
        if (_armed) throw new InvalidOperationException("the previous synchronised micro-step was not finished (AverageGradients)");
        Array.Clear(_uses);
        for (int b = 0; b < _buckets.Length; b++) _waiting[b] = _buckets[b].Length;
        Array.Clear(_pending);
        _events.Clear();
        _next = 0;
        _armed = true;
    }

    /// <summary>After backward: starts the remaining buckets, waits for all, writes the averages into the gradients.</summary>
    public void Finish()
    {
        if (!_armed) throw new InvalidOperationException("Finish without Arm");
        _events.Add(new GradientSyncEvent(GradientSyncEventKind.BackwardFinished, -1));
        while (_next < _buckets.Length) Start(_next++);
        using var noGrad = no_grad();
        for (int b = 0; b < _buckets.Length; b++)
        {
            using var scope = NewDisposeScope();
            _pending[b]!.Wait();
            long offset = 0;
            foreach (int i in _buckets[b])
            {
                Parameter p = _parameters[i];
                var slice = _flat[b].narrow(0, offset, p.numel()).view_as(p);
                if (p.grad is null) p.grad = slice.clone().DetachFromDisposeScope();
                else p.grad.copy_(slice);
                offset += p.numel();
            }
        }
        _armed = false;
    }

    Tensor? Enter(Tensor input, int[] owned, int marker)
    {
        if (!_armed || !is_grad_enabled() || !input.requires_grad) return null;
        foreach (int i in owned) _uses[i]++;
        return ReadinessMarker.apply(input, this, owned, marker);
    }

    void Ready(int[] owned, int marker)
    {
        if (!_armed) return;
        _events.Add(new GradientSyncEvent(GradientSyncEventKind.GradientsReady, marker));
        foreach (int i in owned)
            if (_uses[i] > 0 && --_uses[i] == 0) _waiting[_bucketOf[i]]--;
        while (_next < _buckets.Length && _waiting[_next] == 0) Start(_next++);
        _channel.Progress();
    }

    // Copies the bucket's gradients (zeros for none) into its flat buffer and starts the all-reduce Average.
    void Start(int b)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        long offset = 0;
        foreach (int i in _buckets[b])
        {
            Parameter p = _parameters[i];
            var slice = _flat[b].narrow(0, offset, p.numel());
            Tensor? grad = p.grad;
            if (grad is null) slice.zero_();
            else slice.copy_(grad.reshape(-1));
            offset += p.numel();
        }
        _pending[b] = _channel.Start(_flat[b], ReduceOp.Average);
        _events.Add(new GradientSyncEvent(GradientSyncEventKind.BucketStarted, b));
    }

    public void Dispose()
    {
        foreach (var unhook in _unhook) unhook();
        _unhook.Clear();
        _channel.Dispose();
        foreach (var t in _flat) t.Dispose();
    }

    /// <summary>Identity whose backward tells the owner that a module's parameter gradients are final.</summary>
    sealed class ReadinessMarker : autograd.SingleTensorFunction<ReadinessMarker>
    {
        public override string Name => nameof(ReadinessMarker);

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            ctx.save_data("owner", vars[1]);
            ctx.save_data("owned", vars[2]);
            ctx.save_data("marker", vars[3]);
            return (Tensor)vars[0]; // libtorch makes the returned input a view with this node as its gradient edge
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
        {
            ((GradientOverlap)ctx.get_data("owner")).Ready((int[])ctx.get_data("owned"), (int)ctx.get_data("marker"));
            return new List<Tensor> { grad_output, null!, null!, null! };
        }
    }
}
