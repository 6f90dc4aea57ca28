using Osprey.Distributed;
using Osprey.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// The trainable parameters of a model laid out in one contiguous buffer per optimiser group, with their gradients in a
/// second buffer of the same layout: every parameter becomes a view of its group's buffer (the same
/// <see cref="Parameter"/> object, re-pointed with <c>set_</c>, so modules, state dicts and autograd see no change) and
/// its <c>.grad</c> a view of the gradient buffer that backward accumulates into. The optimiser, gradient clipping, loss
/// scaling, the EMA and the gradient all-reduce then each work on a few large tensors instead of one small tensor per
/// parameter: for YOLOv8n a step issues tens of kernels instead of thousands (what apex's and DDP's flat buffers do;
/// TorchSharp has no <c>_foreach</c> ops), and nothing in it waits for the device.
/// </summary>
/// <remarks>
/// Every parameter keeps a gradient (zeros when backward did not reach it), so a parameter that takes no part in the
/// loss is still decayed and moved by momentum, where PyTorch skips a <c>None</c> gradient; every trainable parameter
/// of the detection models takes part in every step. Build it after the model has reached its device and before
/// anything keeps references to parameter storage.
/// </remarks>
public sealed class FlatParameters : IDisposable
{
    readonly FlatGroup[] _groups;

    FlatParameters(FlatGroup[] groups, FlatBuffers? buffers) => (_groups, Buffers) = (groups, buffers);

    /// <summary>The groups, in the order given.</summary>
    public IReadOnlyList<FlatGroup> Groups => _groups;

    /// <summary>The model's floating-point buffers (BatchNorm statistics) laid out flat too, or null (none, or given none).</summary>
    public FlatBuffers? Buffers { get; }

    /// <summary>
    /// Lays out <paramref name="groups"/> (each parameter once, all of one floating dtype and device, contiguous, requiring
    /// a gradient) and the floating-point buffers of <paramref name="model"/> (<see cref="Buffers"/>).
    /// </summary>
    /// <param name="groups">The optimiser's parameter groups.</param>
    /// <param name="model">The model, whose floating-point buffers are laid out in <see cref="Buffers"/> as well; or null.</param>
    /// <exception cref="ArgumentException">The parameters or buffers cannot share a buffer; the message says why.</exception>
    public static FlatParameters Create(IReadOnlyList<IReadOnlyList<Parameter>> groups, nn.Module? model)
    {
        var all = groups.SelectMany(g => g).ToList();
        if (Check(all) is { } reason) throw new ArgumentException($"the trainable parameters cannot be laid out flat: {reason}", nameof(groups));
        using var noGrad = no_grad();
        var flat = new FlatGroup[groups.Count];
        for (int g = 0; g < groups.Count; g++) flat[g] = new FlatGroup(groups[g], all[0].dtype, all[0].device);
        return new FlatParameters(flat, model is null ? null : FlatBuffers.Create(model));
    }

    /// <summary>The layout of <paramref name="model"/>'s optimiser groups in Ultralytics' order (pg0 biases, pg1 weights,
    /// pg2 BatchNorm weights: <see cref="ParameterGroups.Of"/>; <paramref name="extra"/>'s parameters after the model's in each
    /// group) and of the model's floating-point buffers.</summary>
    public static FlatParameters For(nn.Module model, IReadOnlyList<nn.Module>? extra = null)
    {
        var groups = ParameterGroups.Of(model, extra);
        return Create(new[] { groups.Biases, groups.Weights, groups.NormWeights }, model);
    }

    static string? Check(List<Parameter> all)
    {
        if (all.Count == 0) return "no trainable parameters";
        if (all.Distinct(ReferenceEqualityComparer.Instance).Count() != all.Count) return "a parameter is in two groups";
        if (!torch.is_floating_point(all[0])) return $"parameters of dtype {all[0].dtype}";
        if (Mismatch(all) is { } mismatch) return mismatch;
        return all.Any(p => !p.requires_grad) ? "a parameter that does not require a gradient" : null;
    }

    // Why these tensors cannot share one flat buffer (two dtypes or devices, or one not contiguous), or null.
    internal static string? Mismatch(IReadOnlyList<Tensor> tensors)
    {
        Tensor first = tensors[0];
        foreach (Tensor t in tensors)
        {
            if (t.dtype != first.dtype) return $"tensors of two dtypes ({first.dtype}, {t.dtype})";
            if (t.device_type != first.device_type || t.device_index != first.device_index) return "tensors on two devices";
            if (!t.is_contiguous()) return "a tensor that is not contiguous";
        }
        return null;
    }

    /// <summary>Every parameter's gradient is its view of the gradient buffer: a gradient something replaced is copied
    /// into its view and the view put back (host-side checks only while nothing was replaced).</summary>
    public void AttachGradients()
    {
        foreach (FlatGroup group in _groups) group.AttachGradients(keepValues: true);
    }

    /// <summary>Zeroes every gradient (the buffers; PyTorch's <c>zero_grad(set_to_none=False)</c>); a gradient something
    /// replaced is dropped and its zeroed view put back.</summary>
    public void ZeroGradients()
    {
        foreach (FlatGroup group in _groups)
        {
            group.Gradients.zero_();
            group.AttachGradients(keepValues: false);
        }
    }

    /// <summary>The gradient buffers.</summary>
    public IEnumerable<Tensor> GradientBuffers => _groups.Select(g => g.Gradients);

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (FlatGroup group in _groups) group.Dispose();
        Buffers?.Dispose();
    }

    // Copies each tensor into its part of a new flat buffer and re-points the tensor there (set_): the same object,
    // now a view. Returns the buffer and the offsets (one more than tensors).
    internal static (Tensor Flat, long[] Offsets) Pack(IReadOnlyList<Tensor> tensors, ScalarType dtype, Device device)
    {
        var offsets = new long[tensors.Count + 1];
        for (int i = 0; i < tensors.Count; i++) offsets[i + 1] = offsets[i] + tensors[i].numel();
        var flat = empty(offsets[^1], dtype: dtype, device: device).DetachFromDisposeScope();
        using var noGrad = no_grad();
        for (int i = 0; i < tensors.Count; i++)
        {
            using var view = Part(flat, offsets[i], offsets[i + 1], tensors[i].shape);
            view.copy_(tensors[i]);
            tensors[i].set_(view);
        }
        return (flat, offsets);
    }

    // Elements [start, end) of a flat buffer as a tensor of the given shape (a view; the caller disposes it).
    internal static Tensor Part(Tensor flat, long start, long end, long[] shape)
    {
        using var range = flat.narrow(0, start, end - start);
        return range.view(shape);
    }
}

/// <summary>
/// A model's floating-point buffers (BatchNorm running statistics) as views of one flat buffer (the same tensors,
/// re-pointed with <c>set_</c>; BatchNorm keeps updating them in place). The EMA averages them, and data parallel
/// broadcasts them, as one tensor.
/// </summary>
public sealed class FlatBuffers : IDisposable
{
    FlatBuffers(IReadOnlyList<string> names, Tensor values) => (Names, Values) = (names, values);

    /// <summary>The buffers' names in the model (its state-dict keys), in buffer order.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>The buffers' values, one after another.</summary>
    public Tensor Values { get; }

    /// <summary>The layout of <paramref name="model"/>'s floating-point buffers, or null when it has none.</summary>
    /// <exception cref="ArgumentException">They are not all of one dtype and device and contiguous.</exception>
    public static FlatBuffers? Create(nn.Module model)
    {
        var named = model.named_buffers().Where(b => torch.is_floating_point(b.buffer)).ToList();
        var buffers = named.Select(b => b.buffer).ToList();
        if (buffers.Count == 0) return null;
        if (FlatParameters.Mismatch(buffers) is { } reason) throw new ArgumentException($"the model's buffers cannot be laid out flat: {reason}", nameof(model));
        var (values, _) = FlatParameters.Pack(buffers, buffers[0].dtype, buffers[0].device);
        return new FlatBuffers(named.Select(b => b.name).ToList(), values);
    }

    /// <inheritdoc/>
    public void Dispose() => Values.Dispose();
}

/// <summary>One optimiser group's parameters as views of <see cref="Values"/>, their gradients as views of <see cref="Gradients"/>.</summary>
public sealed class FlatGroup : IDisposable
{
    readonly long[] _offsets;

    internal FlatGroup(IReadOnlyList<Parameter> parameters, ScalarType dtype, Device device)
    {
        Parameters = parameters;
        (Values, _offsets) = FlatParameters.Pack(parameters, dtype, device);   // the same Parameters, now views of Values
        Gradients = zeros(_offsets[^1], dtype: dtype, device: device).DetachFromDisposeScope();
        foreach (Parameter p in parameters)
        {
            using Tensor? old = p.grad;
            p.grad = null;
        }
        AttachGradients(keepValues: false);
    }

    /// <summary>The parameters, in buffer order.</summary>
    public IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>The parameters' values, one after another (flat).</summary>
    public Tensor Values { get; }

    /// <summary>The parameters' gradients, in the same layout.</summary>
    public Tensor Gradients { get; }

    /// <summary>Elements in the group.</summary>
    public long Count => _offsets[^1];

    /// <summary>Elements of the group's first <paramref name="parameters"/> parameters.</summary>
    public long CountOf(int parameters) => _offsets[parameters];

    /// <summary>Parameter <paramref name="index"/>'s part of <paramref name="flat"/> (a buffer of this layout), shaped as the parameter.</summary>
    public Tensor Slice(Tensor flat, int index) => FlatParameters.Part(flat, _offsets[index], _offsets[index + 1], Parameters[index].shape);

    // keepValues: a replaced gradient's values are copied into the view (before the step) or dropped (when zeroing).
    internal void AttachGradients(bool keepValues)
    {
        for (int i = 0; i < Parameters.Count; i++)
        {
            Parameter p = Parameters[i];
            using Tensor? grad = p.grad;
            if (grad is not null && grad.numel() > 0 && grad.is_contiguous() && TensorMemory.DataPointer(grad) == ElementAddress(i)) continue;
            using var view = Slice(Gradients, i);
            if (grad is not null && keepValues) view.copy_(grad);
            p.grad = view;
        }
    }

    IntPtr ElementAddress(int index) => TensorMemory.DataPointer(Gradients) + (nint)(_offsets[index] * Gradients.element_size());

    /// <inheritdoc/>
    public void Dispose()
    {
        Values.Dispose();
        Gradients.Dispose();
    }
}
