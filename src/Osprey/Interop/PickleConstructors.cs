using System.Collections;
using System.Globalization;
using Razorvine.Pickle;
using static TorchSharp.torch;

namespace Osprey.Interop;

/// <summary>
/// What each known global of <see cref="PickleGlobals"/> becomes when a pickle calls it (<c>REDUCE</c>): plain data,
/// built in .NET. Storage types, <c>torch.Tensor</c>/<c>Parameter</c> (type markers) and module classes are not here:
/// Razorvine keeps them as <c>ClassDictConstructor</c>s (module classes become <c>ClassDict</c>s of their state).
/// </summary>
internal static class PickleConstructors
{
    public static readonly IReadOnlyDictionary<string, IObjectConstructor> All = new Dictionary<string, IObjectConstructor>
    {
        // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        ["torch._utils._rebuild_tensor_v2"] = new Function(RebuildTensor),
        ["torch._utils._rebuild_tensor"] = new Function(RebuildTensor),
        // _rebuild_parameter(data, requires_grad, backward_hooks[, state]): the data
        ["torch._utils._rebuild_parameter"] = new Function(args => (Tensor)args[0]),
        ["torch._utils._rebuild_parameter_with_state"] = new Function(args => (Tensor)args[0]),
        // _rebuild_from_type_v2(func, new_type, args, state): func(*args), the subclass dropped
        ["torch._tensor._rebuild_from_type_v2"] = new Function(args => ((IObjectConstructor)args[0]).construct((object[])args[2])),
        ["collections.OrderedDict"] = new Function(args => new PickledDict(args.Length > 0 ? args[0] as IEnumerable : null)),
        ["builtins.frozenset"] = new Function(FrozenSet),
        ["__builtin__.frozenset"] = new Function(FrozenSet),
        ["torch.Size"] = new Function(args => ((IEnumerable)args[0]).Cast<object>().ToArray()),
        ["torch.device"] = new Function(args => string.Join(":", args.Select(a => Convert.ToString(a, CultureInfo.InvariantCulture)))),
        ["pathlib.PosixPath"] = new Function(Path),
        ["pathlib.WindowsPath"] = new Function(Path),
        ["pathlib.Path"] = new Function(Path),
        ["numpy.dtype"] = new Function(args => new NumpyDtype((string)args[0])),
        ["numpy.core.multiarray.scalar"] = new Function(NumpyScalar),
        ["numpy._core.multiarray.scalar"] = new Function(NumpyScalar),
    };

    private static object RebuildTensor(object[] args)
    {
        var storage = (Tensor)args[0];
        long offset = Convert.ToInt64(args[1], CultureInfo.InvariantCulture);
        long[] size = Longs(args[2]), stride = Longs(args[3]);
        using var view = storage.as_strided(size, stride, offset);
        return TorchUnpickler.Track(view.clone());
    }

    private static object FrozenSet(object[] args) => new HashSet<object>(args.Length > 0 ? ((IEnumerable)args[0]).Cast<object>() : []);

    private static long[] Longs(object tuple) => ((IEnumerable)tuple).Cast<object>().Select(v => Convert.ToInt64(v, CultureInfo.InvariantCulture)).ToArray();

    private static object Path(object[] args) => string.Join("/", args.Select(a => Convert.ToString(a, CultureInfo.InvariantCulture)));

    // numpy's scalar(dtype, raw bytes) for the numbers a checkpoint holds (best_fitness as float64, counts as int64).
    private static object NumpyScalar(object[] args)
    {
        string kind = ((NumpyDtype)args[0]).Name;
        byte[] raw = (byte[])args[1];
        return kind switch
        {
            "f8" => BitConverter.ToDouble(raw),
            "f4" => (double)BitConverter.ToSingle(raw),
            "i8" => BitConverter.ToInt64(raw),
            "i4" => (long)BitConverter.ToInt32(raw),
            "b1" => raw[0] != 0,
            _ => throw new PickleException($"numpy scalar of dtype '{kind}' is not read"),
        };
    }

    private sealed class Function(Func<object[], object> build) : IObjectConstructor
    {
        public object construct(object[] args) => build(args);
    }
}

/// <summary>A numpy dtype named in a pickle (<c>f8</c>, <c>i8</c>, …); its pickled state (byte order, …) is ignored.</summary>
public sealed class NumpyDtype(string name)
{
    /// <summary>numpy's short name.</summary>
    public string Name { get; } = name;

    /// <summary>For the unpickler's BUILD.</summary>
    public void __setstate__(object[] state) { }
}

/// <summary>
/// An unpickled <c>collections.OrderedDict</c>: a <see cref="Hashtable"/> (what Razorvine fills; its SETITEMS does not keep
/// the pickled order, so read by key). Attributes pickled with it (a state dict's <c>_metadata</c>) are kept apart.
/// </summary>
public sealed class PickledDict : Hashtable
{
    /// <summary>An empty one, or one filled from (key, value) pairs.</summary>
    public PickledDict(IEnumerable? pairs = null)
    {
        if (pairs is null) return;
        foreach (var pair in pairs)
        {
            var items = ((IEnumerable)pair).Cast<object>().ToArray();
            this[items[0]] = items[1];
        }
    }

    /// <summary>Attributes set by BUILD (not items).</summary>
    public Hashtable Attributes { get; } = new();

    /// <summary>For the unpickler's BUILD: an OrderedDict's instance attributes.</summary>
    public void __setstate__(Hashtable state)
    {
        foreach (DictionaryEntry entry in state) Attributes[entry.Key] = entry.Value;
    }
}
