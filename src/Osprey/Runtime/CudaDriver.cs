using System.Runtime.InteropServices;
using Osprey.Distributed;

namespace Osprey.Runtime;

/// <summary>
/// The few CUDA driver API calls TorchSharp does not expose (device name, free and total memory), through
/// <c>libcuda.so.1</c> loaded lazily like NCCL (<see cref="NativeLoader"/>). The driver library is there wherever a GPU
/// is (it comes with the driver, whatever CUDA runtime libtorch bundles), and its primary context is the one the
/// runtime, hence libtorch, uses.
/// </summary>
internal sealed unsafe class CudaDriver
{
    public const string LibraryName = "libcuda.so.1";
    static readonly Lazy<(CudaDriver? Driver, string Error)> Shared = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    readonly delegate* unmanaged<uint, int> _init;
    readonly delegate* unmanaged<int*, int, int> _deviceGet;
    readonly delegate* unmanaged<byte*, int, int, int> _deviceGetName;
    readonly delegate* unmanaged<IntPtr*, int, int> _primaryCtxRetain;
    readonly delegate* unmanaged<int, int> _primaryCtxRelease;
    readonly delegate* unmanaged<IntPtr, int> _ctxPush;
    readonly delegate* unmanaged<IntPtr*, int> _ctxPop;
    readonly delegate* unmanaged<nuint*, nuint*, int> _memGetInfo;

    CudaDriver(IntPtr lib)
    {
        IntPtr Sym(string name) => NativeLoader.Export(lib, LibraryName, name);
        _init = (delegate* unmanaged<uint, int>)Sym("cuInit");
        _deviceGet = (delegate* unmanaged<int*, int, int>)Sym("cuDeviceGet");
        _deviceGetName = (delegate* unmanaged<byte*, int, int, int>)Sym("cuDeviceGetName");
        _primaryCtxRetain = (delegate* unmanaged<IntPtr*, int, int>)Sym("cuDevicePrimaryCtxRetain");
        _primaryCtxRelease = (delegate* unmanaged<int, int>)Sym("cuDevicePrimaryCtxRelease_v2");
        _ctxPush = (delegate* unmanaged<IntPtr, int>)Sym("cuCtxPushCurrent_v2");
        _ctxPop = (delegate* unmanaged<IntPtr*, int>)Sym("cuCtxPopCurrent_v2");
        _memGetInfo = (delegate* unmanaged<nuint*, nuint*, int>)Sym("cuMemGetInfo_v2");
    }

    /// <summary>The process's driver, or an exception that says why there is none.</summary>
    public static CudaDriver Instance => Shared.Value.Driver ?? throw new DeviceException(Shared.Value.Error);

    /// <summary>The name of device <paramref name="ordinal"/> (as CUDA_VISIBLE_DEVICES numbers them).</summary>
    public string DeviceName(int ordinal)
    {
        int device = Device(ordinal);
        byte* name = stackalloc byte[256];
        Check(_deviceGetName(name, 256, device), "cuDeviceGetName");
        return Marshal.PtrToStringUTF8((IntPtr)name) ?? $"CUDA device {ordinal}";
    }

    /// <summary>Free and total bytes of device <paramref name="ordinal"/>, read in its primary context.</summary>
    public (long Free, long Total) MemoryInfo(int ordinal)
    {
        int device = Device(ordinal);
        IntPtr context;
        Check(_primaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
        try
        {
            Check(_ctxPush(context), "cuCtxPushCurrent");
            try
            {
                nuint free, total;
                Check(_memGetInfo(&free, &total), "cuMemGetInfo");
                return ((long)free, (long)total);
            }
            finally
            {
                IntPtr popped;
                _ctxPop(&popped);
            }
        }
        finally
        {
            _primaryCtxRelease(device);
        }
    }

    int Device(int ordinal)
    {
        Check(_init(0), "cuInit");
        int device;
        Check(_deviceGet(&device, ordinal), "cuDeviceGet");
        return device;
    }

    static void Check(int status, string call)
    {
        if (status != 0) throw new DeviceException($"{call} failed with CUDA driver error {status}");
    }

    static (CudaDriver?, string) Load()
    {
        IntPtr lib = NativeLoader.TryLoad(new[] { LibraryName, "libcuda.so" }, global: false, out string error);
        if (lib == IntPtr.Zero) return (null, $"the CUDA driver ({LibraryName}) could not be loaded: {error}");
        try
        {
            return (new CudaDriver(lib), "");
        }
        catch (DistributedException e)
        {
            return (null, $"the CUDA driver is not usable: {e.Message}");
        }
    }
}
