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
    static readonly ConcurrentDictionary<long, Scalar> IntCache = new();

    /// <summary>0.</summary>
    public static readonly Scalar Zero = Of(0);

    /// <summary>1.</summary>
    public static readonly Scalar One = Of(1);

    /// <summary>The Scalar of <paramref name="value"/> (a double Scalar, as TorchSharp's implicit conversion of a double), cached for the process.</summary>
    public static Scalar Of(double value) => Cache.GetOrAdd(value, v => v.ToScalar());

    /// <summary>
    /// The integer Scalar of <paramref name="value"/> (as TorchSharp's implicit conversion of an int or long), cached for
    /// the process. Integer tensors need integer Scalars: a double one would promote them to float.
    /// </summary>
    public static Scalar Int(long value) => IntCache.GetOrAdd(value, v => v.ToScalar());

    /// <summary>Integer 1, the alpha of integer-tensor additions.</summary>
    public static readonly Scalar IntOne = Int(1);

    /// <summary><paramref name="a"/> + <paramref name="b"/> with a process-lifetime alpha (integer for integer tensors).</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, Alpha(a));

    /// <summary><paramref name="a"/> + <paramref name="s"/> with a process-lifetime alpha (TorchSharp's <c>add(Scalar)</c> makes one per call).</summary>
    public static Tensor Plus(this Tensor a, Scalar s) => a.add(s, Alpha(a));

    // alpha = 1 of an addition: integer tensors refuse a floating-point alpha
    static Scalar Alpha(Tensor a) => a.is_floating_point() ? One : IntOne;

    /// <summary><paramref name="s"/> − <paramref name="a"/>, as TorchSharp's <c>Scalar - Tensor</c> computes it (−a + s), with explicit Scalars.</summary>
    public static Tensor From(this Scalar s, Tensor a)
    {
        using var negated = a.negative();
        return negated.Plus(s);
    }

    /// <summary><paramref name="a"/> − <paramref name="b"/> (TorchSharp's <c>sub(Tensor)</c> passes no alpha; here for symmetry with <see cref="Plus"/>).</summary>
    public static Tensor Minus(this Tensor a, Tensor b) => a.sub(b);
}
