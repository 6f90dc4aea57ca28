using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Distributed;

/// <summary>Raw memory of TorchSharp tensors for native collectives (host or device pointers).</summary>
internal static partial class TensorMemory
{
    /// <summary>
    /// Address of the first element of a contiguous tensor with at least one element: the storage's base plus
    /// <c>storage_offset * element_size</c>. A CUDA tensor gives a device pointer. Works for every dtype
    /// (TorchSharp's <c>storage&lt;T&gt;()</c> converts bfloat16/float16, so it is not used).
    /// </summary>
    public static IntPtr DataPointer(Tensor tensor)
    {
        if (!tensor.is_contiguous()) throw new ArgumentException("tensor must be contiguous", nameof(tensor));
        if (tensor.numel() == 0) throw new ArgumentException("tensor has no elements", nameof(tensor));
        IntPtr storage = StorageDataPointer(tensor.Handle);
        if (storage == IntPtr.Zero) throw new InvalidOperationException("tensor storage has no data pointer");
        return storage + checked((nint)(tensor.storage_offset() * tensor.element_size()));
    }

    /// <summary>
    /// The tensor itself when contiguous (TorchSharp's <c>contiguous()</c> would return a second handle to the same
    /// memory and make callers copy it onto itself), else a contiguous copy owned by the current dispose scope.
    /// </summary>
    public static Tensor Contiguous(Tensor tensor) => tensor.is_contiguous() ? tensor : tensor.contiguous();

    /// <summary>Size in bytes of one element of <paramref name="dtype"/>.</summary>
    public static int ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Int16 => 2,
        ScalarType.Byte or ScalarType.Int8 or ScalarType.Bool => 1,
        _ => throw new NotSupportedException($"dtype {dtype} is not supported by the process group"),
    };

    [LibraryImport("LibTorchSharp", EntryPoint = "THSStorage_data_ptr")]
    private static partial IntPtr StorageDataPointer(IntPtr tensor);
}
