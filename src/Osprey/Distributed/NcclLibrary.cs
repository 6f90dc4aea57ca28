using System.Runtime.InteropServices;

namespace Osprey.Distributed;

/// <summary>The 128-byte <c>ncclUniqueId</c>, passed by value to <c>ncclCommInitRank</c>.</summary>
[StructLayout(LayoutKind.Sequential, Size = Length)]
internal unsafe struct NcclUniqueId
{
    public const int Length = 128;
    public fixed byte Bytes[Length];
}

/// <summary>
/// NCCL (<c>libnccl.so.2</c>) through function pointers, loaded lazily: nothing touches NCCL until a CUDA process
/// group is created, so CPU-only machines never need it.
/// </summary>
internal sealed unsafe class NcclLibrary
{
    public const string LibraryName = "libnccl.so.2";
    public const int Success = 0;
    public const int InProgress = 7; // ncclInProgress (non-blocking communicators)

    // ncclDataType_t and ncclRedOp_t values (nccl.h, stable since 2.x).
    public const int Int8 = 0, Uint8 = 1, Int32 = 2, Int64 = 4, Float16 = 6, Float32 = 7, Float64 = 8, BFloat16 = 9;
    public const int OpSum = 0, OpMax = 2, OpAverage = 4;

    static readonly Lazy<(NcclLibrary? Library, string Error)> Shared = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    public readonly delegate* unmanaged<NcclUniqueId*, int> GetUniqueId;
    public readonly delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int> CommInitRank;
    public readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> AllReduce;
    public readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> BroadcastOp;
    public readonly delegate* unmanaged<IntPtr, IntPtr, nuint, int, IntPtr, IntPtr, int> AllGather;
    public readonly delegate* unmanaged<IntPtr, int*, int> CommGetAsyncError;
    public readonly delegate* unmanaged<IntPtr, int> CommAbort;
    public readonly delegate* unmanaged<IntPtr, int> CommDestroy;
    public readonly delegate* unmanaged<int, IntPtr> GetErrorString;
    public readonly delegate* unmanaged<int*, int> GetVersion;

    NcclLibrary(IntPtr lib)
    {
        IntPtr Sym(string name) => NativeLoader.Export(lib, LibraryName, name);
        GetUniqueId = (delegate* unmanaged<NcclUniqueId*, int>)Sym("ncclGetUniqueId");
        CommInitRank = (delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int>)Sym("ncclCommInitRank");
        AllReduce = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Sym("ncclAllReduce");
        BroadcastOp = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Sym("ncclBroadcast");
        AllGather = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, IntPtr, IntPtr, int>)Sym("ncclAllGather");
        CommGetAsyncError = (delegate* unmanaged<IntPtr, int*, int>)Sym("ncclCommGetAsyncError");
        CommAbort = (delegate* unmanaged<IntPtr, int>)Sym("ncclCommAbort");
        CommDestroy = (delegate* unmanaged<IntPtr, int>)Sym("ncclCommDestroy");
        GetErrorString = (delegate* unmanaged<int, IntPtr>)Sym("ncclGetErrorString");
        GetVersion = (delegate* unmanaged<int*, int>)Sym("ncclGetVersion");
    }

    /// <summary>The process's NCCL, or an exception that says how to get it.</summary>
    public static NcclLibrary Instance => Shared.Value.Library ?? throw new DistributedException(Shared.Value.Error);

    /// <summary>True when libnccl.so.2 loads here; otherwise <paramref name="error"/> says why and what to do.</summary>
    public static bool IsAvailable(out string error)
    {
        error = Shared.Value.Error;
        return Shared.Value.Library is not null;
    }

    static (NcclLibrary?, string) Load()
    {
        IntPtr lib = NativeLoader.TryLoad(new[] { LibraryName, "libnccl.so" }, global: false, out string error);
        if (lib == IntPtr.Zero)
            return (null,
                $"NCCL is not available: {LibraryName} could not be loaded ({error}). Multi-GPU training needs NCCL: " +
                "install it (e.g. apt-get install libnccl2, or PyTorch's nvidia-nccl package) and make sure " +
                $"{LibraryName} is on LD_LIBRARY_PATH; CPU training across processes uses MPI (device=cpu).");
        try
        {
            return (new NcclLibrary(lib), "");
        }
        catch (DistributedException e)
        {
            return (null, $"NCCL is not usable: {e.Message}");
        }
    }

    /// <summary>NCCL's text for a result code.</summary>
    public string Describe(int result) => $"{Marshal.PtrToStringUTF8(GetErrorString(result)) ?? "unknown"} (ncclResult {result})";
}

/// <summary>The few CUDA runtime calls NCCL needs around it (device selection, completion events).</summary>
internal sealed unsafe class CudaRuntimeLibrary
{
    public const int Success = 0, NotReady = 600;
    public const uint EventDisableTiming = 2;

    static readonly Lazy<CudaRuntimeLibrary> Shared = new(() => new CudaRuntimeLibrary());

    public readonly delegate* unmanaged<int, int> SetDevice;
    public readonly delegate* unmanaged<IntPtr*, uint, int> EventCreateWithFlags;
    public readonly delegate* unmanaged<IntPtr, IntPtr, int> EventRecord;
    public readonly delegate* unmanaged<IntPtr, int> EventQuery;
    public readonly delegate* unmanaged<IntPtr, int> EventDestroy;
    public readonly delegate* unmanaged<IntPtr, int> StreamSynchronize;

    /// <summary>libcudart as already loaded by the CUDA libtorch (soname match), loaded on first use.</summary>
    public static CudaRuntimeLibrary Instance => Shared.Value;

    CudaRuntimeLibrary()
    {
        string[] names = { "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so" };
        IntPtr lib = NativeLoader.TryLoad(names, global: false, out string error);
        if (lib == IntPtr.Zero) throw new DistributedException($"the CUDA runtime (libcudart) could not be loaded: {error}");
        IntPtr Sym(string name) => NativeLoader.Export(lib, "libcudart", name);
        SetDevice = (delegate* unmanaged<int, int>)Sym("cudaSetDevice");
        EventCreateWithFlags = (delegate* unmanaged<IntPtr*, uint, int>)Sym("cudaEventCreateWithFlags");
        EventRecord = (delegate* unmanaged<IntPtr, IntPtr, int>)Sym("cudaEventRecord");
        EventQuery = (delegate* unmanaged<IntPtr, int>)Sym("cudaEventQuery");
        EventDestroy = (delegate* unmanaged<IntPtr, int>)Sym("cudaEventDestroy");
        StreamSynchronize = (delegate* unmanaged<IntPtr, int>)Sym("cudaStreamSynchronize");
    }
}
