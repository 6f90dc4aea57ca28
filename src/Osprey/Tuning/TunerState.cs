using System.Text.Json;
using System.Text.Json.Serialization;
using Osprey.Config;
using Osprey.IO;

namespace Osprey.Tuning;

/// <summary>Where a trial stands.</summary>
public enum TrialStatus
{
    /// <summary>Its process runs (or, in a state read back after a crash, ran when the tuner died: it is relaunched).</summary>
    Running,
    /// <summary>It trained to its end (all epochs, or patience / time stopped it) and exited 0.</summary>
    Completed,
    /// <summary>ASHA stopped it at a rung.</summary>
    Stopped,
    /// <summary>Its process exited non-zero (or could not start) without being asked to stop.</summary>
    Failed,
}

/// <summary>One trial: its hyperparameters, where it ran, and the fitness it reported per epoch.</summary>
public sealed class TrialRecord
{
    /// <summary>0-based index: the trial's hyperparameters are a function of the seed, this and (genetic) earlier results.</summary>
    public int Index { get; init; }

    /// <summary>Its run folder (<c>TUNE/trials/trialN</c>, absolute).</summary>
    public string RunDirectory { get; init; } = "";

    /// <summary>The searched arguments' values, in the space's order.</summary>
    public Dictionary<string, double> Hyperparameters { get; init; } = new(StringComparer.Ordinal);

    /// <summary>Where it stands.</summary>
    public TrialStatus Status { get; set; }

    /// <summary>Fitness (0.1·mAP50 + 0.9·mAP50-95) per epoch, as its results.csv reports them: [e − 1] is epoch e.</summary>
    public List<double> Fitness { get; init; } = new();

    /// <summary>The slot it runs (ran) in, as shown in the table.</summary>
    public string? Slot { get; set; }

    /// <summary>The process id of its latest launch (the launcher's: srun, mpirun or the trial itself).</summary>
    public int? ProcessId { get; set; }

    /// <summary>Exit code of its process, once it has ended.</summary>
    public int? ExitCode { get; set; }

    /// <summary>True once ASHA has decided to stop it.</summary>
    public bool StopRequested { get; set; }

    /// <summary>How many times it was launched (more than once when a killed tuner was resumed).</summary>
    public int Launches { get; set; }

    /// <summary>Why it stopped or failed, or null.</summary>
    public string? Note { get; set; }

    /// <summary>The trial's name (its run folder's).</summary>
    [JsonIgnore] public string Name => $"trial{Index}";

    /// <summary>Epochs reported.</summary>
    [JsonIgnore] public int Epochs => Fitness.Count;

    /// <summary>Its best epoch's fitness (what best.safetensors holds), or null before its first epoch.</summary>
    [JsonIgnore] public double? BestFitness => Fitness.Count == 0 ? null : Fitness.Max();

    /// <summary>True once it has ended (completed, stopped or failed).</summary>
    [JsonIgnore] public bool Ended => Status != TrialStatus.Running;
}

/// <summary>
/// Everything a tuner needs to continue after a crash, in <c>TUNE/tune_state.json</c>, rewritten atomically after every
/// event (a trial started, reported an epoch, was stopped or ended): the tune's arguments, the search and its settings,
/// the space, every trial so far and what each ASHA rung has recorded.
/// </summary>
public sealed class TunerState
{
    /// <summary>The state file's name in the tune folder.</summary>
    public const string FileName = "tune_state.json";

    static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>The format's version.</summary>
    public int Version { get; init; } = 1;

    /// <summary>The tune's explicitly given arguments, <c>key=value</c> (resume parses them again).</summary>
    public List<string> Arguments { get; init; } = new();

    /// <summary>genetic or asha.</summary>
    public SearchMethod Search { get; init; }

    /// <summary>The seed of the trials' draws (<c>seed=</c>).</summary>
    public long Seed { get; init; }

    /// <summary>Trials to run.</summary>
    public int Iterations { get; init; }

    /// <summary>Epochs of a full trial (ASHA's max_t).</summary>
    public int Epochs { get; init; }

    /// <summary>Image size every trial trains at.</summary>
    public int ImageSize { get; init; }

    /// <summary>ASHA's first rung.</summary>
    public int GracePeriod { get; init; }

    /// <summary>ASHA's reduction factor (3, as Ultralytics sets it).</summary>
    public int ReductionFactor { get; init; } = 3;

    /// <summary>Genetic: trial i is bred from the trials with index ≤ i − this (the trials at once when the tune began).</summary>
    public int BreedingLag { get; init; } = 1;

    /// <summary>The searched hyperparameters.</summary>
    public List<SearchDimension> Space { get; init; } = new();

    /// <summary>The trials so far, by index.</summary>
    public List<TrialRecord> Trials { get; init; } = new();

    /// <summary>ASHA: what each rung has recorded (rung → trial → fitness).</summary>
    public Dictionary<int, Dictionary<int, double>> Rungs { get; set; } = new();

    /// <summary>The tuner's wall time so far, in seconds (every launch of a resumed tuner included).</summary>
    public double Seconds { get; set; }

    /// <summary>The state file in <paramref name="directory"/>.</summary>
    public static string PathIn(string directory) => Path.Combine(directory, FileName);

    /// <summary>Writes the state into <paramref name="directory"/> atomically.</summary>
    public void Save(string directory) => AtomicFile.WriteAllText(PathIn(directory), JsonSerializer.Serialize(this, Json));

    /// <summary>Reads a state file.</summary>
    /// <exception cref="InvalidDataException">It is not a tuner state; the message names the file.</exception>
    public static TunerState Load(string path)
    {
        try
        {
            var state = JsonSerializer.Deserialize<TunerState>(File.ReadAllText(path), Json)
                ?? throw new InvalidDataException($"{path}: empty tuner state");
            if (state.Version != 1) throw new InvalidDataException($"{path}: tuner state version {state.Version}, this Osprey reads 1");
            return state;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a tuner state ({e.Message})");
        }
    }
}
