using System.Reflection;
using TorchSharp;

namespace Osprey.Runtime;

/// <summary>Which libtorch this build and process use: the build's choice and what actually loaded.</summary>
public static class TorchBackend
{
    static readonly Lazy<bool> Cuda = new(ProbeCuda);

    /// <summary>The build's backend property (<c>-p:TorchBackend=cpu|cuda</c>).</summary>
    public static string BuildBackend =>
        typeof(TorchBackend).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "TorchBackend")?.Value ?? "cpu";

    /// <summary>True when the loaded libtorch has CUDA and sees at least one GPU.</summary>
    public static bool CudaAvailable => Cuda.Value;

    /// <summary>Why a CUDA build could not load CUDA (the first line of the loader's error), or null.</summary>
    public static string? CudaLoadError { get; private set; }

    /// <summary>One line: build backend, libtorch version and whether CUDA is usable (and, when a CUDA build has none, why).</summary>
    public static string Description =>
        $"a {BuildBackend} build with libtorch {torch.__version__} " +
        (CudaAvailable ? $"(CUDA, {torch.cuda.device_count()} GPU(s))"
            : CudaLoadError is null ? "(CPU only)" : $"(CPU only: loading CUDA libtorch failed: {CudaLoadError})");

    /// <summary>
    /// Loads the Torch backend before first use. A CUDA build loads libtorch's CUDA libraries from <c>LD_LIBRARY_PATH</c>
    /// here, before any other Torch call; when they are not there (a CPU-only libtorch, e.g. the CPU dry run of the GPU
    /// kit) it runs on the CPU and keeps the reason in <see cref="CudaLoadError"/>, which a CUDA device request reports.
    /// A CPU build needs nothing.
    /// </summary>
    public static void Initialize()
    {
        if (BuildBackend != "cuda") return;
        try
        {
            torch.InitializeDeviceType(DeviceType.CUDA);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Exception root = e;
            while (root.InnerException is not null) root = root.InnerException;
            // TorchSharp's message is a load trace; a line naming torch_cuda says why, when there is one.
            string[] lines = root.Message.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            CudaLoadError = lines.FirstOrDefault(l => l.Contains("torch_cuda", StringComparison.Ordinal))
                ?? (lines.FirstOrDefault() ?? root.GetType().Name).Split(" Trace from")[0].TrimEnd(':', '.') +
                " (no libtorch_cuda.so on LD_LIBRARY_PATH?)";
        }
    }

    static bool ProbeCuda()
    {
        try
        {
            // TorchSharp must load its CUDA backend before any CUDA call; on a CPU libtorch this throws.
            if (CudaLoadError is not null) return false; // Initialize already tried and said why
            torch.InitializeDeviceType(DeviceType.CUDA);
            return torch.cuda.is_available();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return false;
        }
    }
}
