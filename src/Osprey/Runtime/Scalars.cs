using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Runtime;

/// <summary>
/// TorchSharp Scalars that live for the whole process. TorchSharp 0.107 turns a number into a fresh Scalar at every
/// implicit conversion (including the alpha = 1 of every <c>tensor + tensor</c>) and frees it
/// from a finalizer; a collection that runs while such a call is still in native code can free the Scalar under it
/// ("toFloat: Expected false to be true", TorchSharp PR #1434/#1496). Hot paths use these instead.
/// </summary>
public static class Scalars
{
    static readonly ConcurrentDictionary<double, Scalar> Cache = new();

    /// <summary>0.</summary>
    public static readonly Scalar Zero = Of(0);

    /// <summary>1.</summary>
    public static readonly Scalar One = Of(1);

    /// <summary>The Scalar of <paramref name="value"/> (a double Scalar, as TorchSharp's implicit conversion of a double), cached for the process.</summary>
    public static Scalar Of(double value) => Cache.GetOrAdd(value, v => v.ToScalar());

    /// <summary><paramref name="a"/> + <paramref name="b"/> with a process-lifetime alpha.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    /// <summary><paramref name="a"/> − <paramref name="b"/> (TorchSharp's <c>sub(Tensor)</c> passes no alpha; here for symmetry with <see cref="Plus"/>).</summary>
    public static Tensor Minus(this Tensor a, Tensor b) => a.sub(b);
}
