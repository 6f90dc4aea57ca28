using System.Runtime.InteropServices;

namespace Osprey.Runtime;

/// <summary>
/// A CUDA device's compute capability (TorchSharp 0.107 has no <c>torch.cuda.get_device_capability</c>), from the
/// CUDA runtime that the CUDA libtorch already loaded (<c>cudaDeviceGetAttribute</c>, a stable C entry point).
/// </summary>
public static class CudaCapability
{
    const int ComputeCapabilityMajorAttribute = 75;   // cudaDevAttrComputeCapabilityMajor
    const int ComputeCapabilityMinorAttribute = 76;   // cudaDevAttrComputeCapabilityMinor

    static readonly string[] RuntimeNames = ["libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so"];

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate int DeviceGetAttribute(out int value, int attribute, int device);

    static readonly Lazy<DeviceGetAttribute?> Native = new(() =>
    {
        foreach (string name in RuntimeNames)
            if (NativeLibrary.TryLoad(name, out IntPtr library) &&
                NativeLibrary.TryGetExport(library, "cudaDeviceGetAttribute", out IntPtr address))
                return Marshal.GetDelegateForFunctionPointer<DeviceGetAttribute>(address);
        return null;
    });

    /// <summary>(major, minor) of CUDA device <paramref name="device"/>, or null when no CUDA runtime answers.</summary>
    public static (int Major, int Minor)? Of(int device)
    {
        if (Native.Value is not { } get) return null;
        if (get(out int major, ComputeCapabilityMajorAttribute, device) != 0) return null;
        if (get(out int minor, ComputeCapabilityMinorAttribute, device) != 0) return null;
        return (major, minor);
    }
}
