using System.Runtime.InteropServices;

namespace Osprey.Distributed;

/// <summary>OpenMPI's <c>MPI_Status</c> (source, tag, error, then private fields).</summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
internal struct MpiStatus
{
    public int Source, Tag, Error, Cancelled;
    public nuint Count;
}

/// <summary>
/// OpenMPI 4 (<c>libmpi.so.40</c>) through function pointers. Handles are OpenMPI's: communicators, datatypes, ops and
/// requests are pointers, and the predefined ones are the addresses of global symbols (<c>ompi_mpi_comm_world</c>);
/// <c>MPI_IN_PLACE</c> is <c>(void*)1</c> and <c>MPI_STATUS_IGNORE</c> is null. MPICH's ABI differs: not supported.
/// One instance per process (MPI can be initialised once).
/// </summary>
internal sealed unsafe class MpiLibrary
{
    public const string LibraryName = "libmpi.so.40";
    public const int Success = 0;
    public const int ThreadSerialized = 2; // OpenMPI: SINGLE 0, FUNNELED 1, SERIALIZED 2, MULTIPLE 3
    public static readonly IntPtr InPlace = 1;

    static readonly Lazy<MpiLibrary> Shared = new(() => new MpiLibrary(), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The process's libmpi, loaded on first use.</summary>
    /// <exception cref="DistributedException">libmpi.so.40 is missing.</exception>
    public static MpiLibrary Instance => Shared.Value;

    public readonly IntPtr CommWorld, OpSum, OpMax, ErrorsReturn;
    public readonly IntPtr Float, Double, Int32, Int64, Byte;

    public readonly delegate* unmanaged<int*, byte***, int, int*, int> InitThread;
    public readonly delegate* unmanaged<int*, int> Initialized;
    public readonly delegate* unmanaged<int*, int> Finalized;
    public readonly delegate* unmanaged<int> Finalize;
    public readonly delegate* unmanaged<IntPtr, int*, int> CommRank;
    public readonly delegate* unmanaged<IntPtr, int*, int> CommSize;
    public readonly delegate* unmanaged<IntPtr, IntPtr, int> CommSetErrhandler;
    public readonly delegate* unmanaged<int, byte*, int*, int> ErrorString;
    public readonly delegate* unmanaged<IntPtr, int, int> AbortJob;
    public readonly delegate* unmanaged<IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr, int> Allreduce;
    public readonly delegate* unmanaged<IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr, IntPtr*, int> Iallreduce;
    public readonly delegate* unmanaged<IntPtr, int, IntPtr, int, IntPtr, int> Bcast;
    public readonly delegate* unmanaged<IntPtr, int, IntPtr, int, IntPtr, IntPtr*, int> Ibcast;
    public readonly delegate* unmanaged<IntPtr, int, IntPtr, IntPtr, int, IntPtr, IntPtr, int> Allgather;
    public readonly delegate* unmanaged<IntPtr, int, IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr*, int> Iallgather;
    public readonly delegate* unmanaged<IntPtr, int> BarrierBlocking;
    public readonly delegate* unmanaged<IntPtr, IntPtr*, int> Ibarrier;
    public readonly delegate* unmanaged<IntPtr*, int*, IntPtr, int> Test;
    public readonly delegate* unmanaged<IntPtr, int, IntPtr, int, int, IntPtr, int> Send;
    public readonly delegate* unmanaged<IntPtr, int, IntPtr, int, int, IntPtr, MpiStatus*, int> Recv;
    public readonly delegate* unmanaged<int, int, IntPtr, int*, MpiStatus*, int> Iprobe;
    public readonly delegate* unmanaged<int*, int> QueryThread;

    public const int AnySource = -1; // OpenMPI's MPI_ANY_SOURCE

    MpiLibrary()
    {
        IntPtr lib = NativeLoader.TryLoad(new[] { LibraryName, "libmpi.so" }, global: true, out string error);
        if (lib == IntPtr.Zero)
            throw new DistributedException(
                $"OpenMPI is not installed ({error}). Install it (Debian/Ubuntu: apt-get install openmpi-bin, or " +
                "run build/install-deps.sh) to train on CPUs across processes.");
        IntPtr Sym(string name) => NativeLoader.Export(lib, LibraryName, name);

        CommWorld = Sym("ompi_mpi_comm_world");
        OpSum = Sym("ompi_mpi_op_sum");
        OpMax = Sym("ompi_mpi_op_max");
        ErrorsReturn = Sym("ompi_mpi_errors_return");
        Float = Sym("ompi_mpi_float");
        Double = Sym("ompi_mpi_double");
        Int32 = Sym("ompi_mpi_int32_t");
        Int64 = Sym("ompi_mpi_int64_t");
        Byte = Sym("ompi_mpi_byte");

        InitThread = (delegate* unmanaged<int*, byte***, int, int*, int>)Sym("MPI_Init_thread");
        Initialized = (delegate* unmanaged<int*, int>)Sym("MPI_Initialized");
        Finalized = (delegate* unmanaged<int*, int>)Sym("MPI_Finalized");
        Finalize = (delegate* unmanaged<int>)Sym("MPI_Finalize");
        CommRank = (delegate* unmanaged<IntPtr, int*, int>)Sym("MPI_Comm_rank");
        CommSize = (delegate* unmanaged<IntPtr, int*, int>)Sym("MPI_Comm_size");
        CommSetErrhandler = (delegate* unmanaged<IntPtr, IntPtr, int>)Sym("MPI_Comm_set_errhandler");
        ErrorString = (delegate* unmanaged<int, byte*, int*, int>)Sym("MPI_Error_string");
        AbortJob = (delegate* unmanaged<IntPtr, int, int>)Sym("MPI_Abort");
        Allreduce = (delegate* unmanaged<IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr, int>)Sym("MPI_Allreduce");
        Iallreduce = (delegate* unmanaged<IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr, IntPtr*, int>)Sym("MPI_Iallreduce");
        Bcast = (delegate* unmanaged<IntPtr, int, IntPtr, int, IntPtr, int>)Sym("MPI_Bcast");
        Ibcast = (delegate* unmanaged<IntPtr, int, IntPtr, int, IntPtr, IntPtr*, int>)Sym("MPI_Ibcast");
        Allgather = (delegate* unmanaged<IntPtr, int, IntPtr, IntPtr, int, IntPtr, IntPtr, int>)Sym("MPI_Allgather");
        Iallgather = (delegate* unmanaged<IntPtr, int, IntPtr, IntPtr, int, IntPtr, IntPtr, IntPtr*, int>)Sym("MPI_Iallgather");
        BarrierBlocking = (delegate* unmanaged<IntPtr, int>)Sym("MPI_Barrier");
        Ibarrier = (delegate* unmanaged<IntPtr, IntPtr*, int>)Sym("MPI_Ibarrier");
        Test = (delegate* unmanaged<IntPtr*, int*, IntPtr, int>)Sym("MPI_Test");
        Send = (delegate* unmanaged<IntPtr, int, IntPtr, int, int, IntPtr, int>)Sym("MPI_Send");
        Recv = (delegate* unmanaged<IntPtr, int, IntPtr, int, int, IntPtr, MpiStatus*, int>)Sym("MPI_Recv");
        Iprobe = (delegate* unmanaged<int, int, IntPtr, int*, MpiStatus*, int>)Sym("MPI_Iprobe");
        QueryThread = (delegate* unmanaged<int*, int>)Sym("MPI_Query_thread");
    }

    /// <summary>True when libmpi can be loaded on this machine (does not initialise MPI).</summary>
    public static bool IsAvailable(out string error)
    {
        IntPtr lib = NativeLoader.TryLoad(new[] { LibraryName, "libmpi.so" }, global: true, out error);
        return lib != IntPtr.Zero;
    }

    /// <summary>OpenMPI's text for an error code.</summary>
    public string Describe(int code)
    {
        byte* buffer = stackalloc byte[512]; // MPI_MAX_ERROR_STRING is 256 in OpenMPI
        int length = 0;
        if (ErrorString(code, buffer, &length) != Success || length <= 0) return $"MPI error {code}";
        return $"{Marshal.PtrToStringUTF8((IntPtr)buffer, length)} (MPI error {code})";
    }
}
