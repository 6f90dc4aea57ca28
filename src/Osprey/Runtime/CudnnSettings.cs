using System.Runtime.InteropServices;

namespace Osprey.Runtime;

/// <summary>
/// libtorch's global cuDNN switches that TorchSharp 0.107 does not expose (PyTorch's
/// <c>torch.backends.cudnn.benchmark</c> and <c>.deterministic</c>), reached through the exported C++ members of
/// <c>at::Context</c> in <c>libtorch_cpu.so</c> (present in the CPU and the CUDA builds alike; on the CPU they are
/// stored and simply unused). <see cref="IsAvailable"/> is false where the library or a symbol cannot be found, and
/// the setters then do nothing.
/// </summary>
public static class CudnnSettings
{
    static readonly Lazy<Api?> Native = new(Load);

    /// <summary>True when libtorch's context could be reached.</summary>
    public static bool IsAvailable => Native.Value is not null;

    /// <summary>cuDNN autotuning: time the candidate algorithms for each new input shape and keep the fastest.</summary>
    public static bool Benchmark
    {
        get => Native.Value is { } api && api.GetBenchmark(api.Context()) != 0;
        set { if (Native.Value is { } api) api.SetBenchmark(api.Context(), (byte)(value ? 1 : 0)); }
    }

    /// <summary>Only deterministic cuDNN algorithms (Ultralytics sets it for <c>deterministic=True</c>).</summary>
    public static bool Deterministic
    {
        get => Native.Value is { } api && api.GetDeterministic(api.Context()) != 0;
        set { if (Native.Value is { } api) api.SetDeterministic(api.Context(), (byte)(value ? 1 : 0)); }
    }

    /// <summary>
    /// Training on CUDA: autotuning on (<c>cudnn.benchmark = True</c>; which algorithm wins may differ between runs),
    /// deterministic algorithms only with <paramref name="deterministic"/> (Ultralytics' <c>deterministic=True</c>).
    /// </summary>
    public static void ConfigureForTraining(bool deterministic)
    {
        Benchmark = true;
        Deterministic = deterministic;
    }

    // Itanium C++ ABI: a member function takes `this` as its first argument; bool is one byte.
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate IntPtr GlobalContext();
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate void SetFlag(IntPtr context, byte value);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] delegate byte GetFlag(IntPtr context);

    sealed record Api(GlobalContext Context, SetFlag SetBenchmark, GetFlag GetBenchmark, SetFlag SetDeterministic,
        GetFlag GetDeterministic);

    static Api? Load()
    {
        _ = TorchSharp.torch.__version__;                      // TorchSharp loads libtorch first
        if (!NativeLibrary.TryLoad("libtorch_cpu.so", out IntPtr library)) return null;
        T? Get<T>(string symbol) where T : Delegate =>
            NativeLibrary.TryGetExport(library, symbol, out IntPtr address) ? Marshal.GetDelegateForFunctionPointer<T>(address) : null;
        var context = Get<GlobalContext>("_ZN2at13globalContextEv");
        var setBenchmark = Get<SetFlag>("_ZN2at7Context17setBenchmarkCuDNNEb");
        var getBenchmark = Get<GetFlag>("_ZNK2at7Context14benchmarkCuDNNEv");
        var setDeterministic = Get<SetFlag>("_ZN2at7Context21setDeterministicCuDNNEb");
        var getDeterministic = Get<GetFlag>("_ZNK2at7Context18deterministicCuDNNEv");
        return context is null || setBenchmark is null || getBenchmark is null || setDeterministic is null || getDeterministic is null
            ? null
            : new Api(context, setBenchmark, getBenchmark, setDeterministic, getDeterministic);
    }
}
