using Osprey.Config;
using Osprey.Data;
using Osprey.Training;

namespace Osprey.Tuning;

/// <summary>
/// A tune being run: its folder, its state, the arguments in effect, where the trials run and the space; what a trial's
/// hyperparameters and command line are. <see cref="Open"/> begins a new tune or continues a killed one.
/// </summary>
internal sealed class TuneSession : IDisposable
{
    /// <summary>The lock file a running tuner holds in its folder.</summary>
    public const string LockFile = ".tune.lock";

    FileStream? _lock;

    // The tune's own arguments, and those the session sets for every trial: not passed on as they were given.
    static readonly HashSet<string> TunerKeys = new(StringComparer.Ordinal)
    {
        "iterations", "search", "space", "trials_at_once", "grace_period", "hostfile", "resume", "project", "name", "exist_ok",
        "device", "workers", "nproc", "epochs", "imgsz",
    };

    TuneSession(string directory, TunerState state, OspreyArgs args, TrialPlacement placement, bool resumed)
    {
        (Directory, State, Args, Placement, Resumed) = (directory, state, args, placement, resumed);
        Space = SearchSpace.From(state.Space);
    }

    /// <summary>The tune folder (absolute).</summary>
    public string Directory { get; }

    /// <summary>The state, saved after every event.</summary>
    public TunerState State { get; }

    /// <summary>The tune's arguments in effect (a resumed tune's own, with this launch's device and trials_at_once).</summary>
    public OspreyArgs Args { get; }

    /// <summary>Where the trials run.</summary>
    public TrialPlacement Placement { get; }

    /// <summary>The searched hyperparameters.</summary>
    public SearchSpace Space { get; }

    /// <summary>True when a killed tune continues.</summary>
    public bool Resumed { get; }

    /// <summary>Begins the tune <paramref name="args"/> asks for, or with <c>resume=</c> continues the one named.</summary>
    /// <exception cref="ArgumentsException">A bad argument, space, placement or resume target.</exception>
    public static TuneSession Open(OspreyArgs args, IReadOnlyDictionary<string, string> environment) =>
        args.Resume.Enabled ? Continue(args, environment) : Begin(args, environment);

    static TuneSession Begin(OspreyArgs given, IReadOnlyDictionary<string, string> environment)
    {
        Check(given);
        var args = Absolute(given);
        var space = SearchSpace.For(args);
        var placement = TrialPlacement.Plan(args, environment, Environment.ProcessorCount);
        DatasetCatalog.Resolve(args.Data!);  // a bad data= fails here, and shapes is generated once, not by every trial
        var resolved = TrainingSetup.ResolveDefaults(args, cpu: placement.Slots.All(s => s.Device == "cpu"));
        string directory = Path.GetFullPath(RunDirectory.Create(args.Project, args.Name, "tune", args.ExistOk));
        var held = Lock(directory);
        if (File.Exists(TunerState.PathIn(directory)))
        {
            held.Dispose();
            throw new ArgumentsException($"{directory} already holds a tune ({TunerState.FileName}): continue it with resume={directory}, or give another name=");
        }
        var state = new TunerState
        {
            Arguments = ArgsSchema.All.Where(s => args.IsGiven(s.Key) && s.Key != "resume")
                .Select(s => $"{s.Key}={ArgsSchema.Format(s.Property.GetValue(args))}").ToList(),
            Search = args.Search, Seed = args.Seed, Iterations = args.Iterations, Epochs = resolved.Epochs, ImageSize = resolved.Imgsz,
            GracePeriod = Math.Min(args.GracePeriod, resolved.Epochs), BreedingLag = placement.Slots.Count, Space = space.Dimensions.ToList(),
        };
        state.Save(directory);
        return new TuneSession(directory, state, args, placement, resumed: false) { _lock = held };
    }

    static TuneSession Continue(OspreyArgs args, IReadOnlyDictionary<string, string> environment)
    {
        string path = StatePath(args);
        var held = Lock(Path.GetDirectoryName(Path.GetFullPath(path))!);
        try
        {
            return Continue(args, environment, path, held);
        }
        catch
        {
            held.Dispose();
            throw;
        }
    }

    static TuneSession Continue(OspreyArgs args, IReadOnlyDictionary<string, string> environment, string path, FileStream held)
    {
        var state = TunerState.Load(path);
        OspreyArgs saved;
        try
        {
            saved = ArgsParser.Parse(state.Arguments.Select(a => a.Split('=', 2)).Select(p => new KeyValuePair<string, string>(p[0], p[1])));
        }
        catch (ArgumentsException e)
        {
            throw new ArgumentsException($"{path}: its arguments no longer parse: {e.Message}");
        }
        // where to run may change, as train's resume lets device and workers change
        var effective = saved with
        {
            Device = args.Device ?? saved.Device,
            TrialsAtOnce = args.IsGiven("trials_at_once") ? args.TrialsAtOnce : saved.TrialsAtOnce,
            Workers = args.IsGiven("workers") ? args.Workers : saved.Workers,
        };
        var placement = TrialPlacement.Plan(effective, environment, Environment.ProcessorCount);
        return new TuneSession(Path.GetDirectoryName(Path.GetFullPath(path))!, state, effective, placement, resumed: true) { _lock = held };
    }

    // One tuner per folder: an exclusive lock on TUNE/.tune.lock, released when the tuner ends, however it ends.
    static FileStream Lock(string directory)
    {
        try
        {
            return new FileStream(Path.Combine(directory, LockFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            throw new ArgumentsException($"{directory} is being tuned by another osprey tune (it holds {LockFile}); wait for it to end or stop it first");
        }
    }

    /// <summary>Releases the folder's lock.</summary>
    public void Dispose() => _lock?.Dispose();

    // resume=PATH: a tune folder or its tune_state.json; resume=True: the newest tune_state.json under the project (runs/).
    static string StatePath(OspreyArgs args)
    {
        if (args.Resume.Checkpoint is { } given)
        {
            if (System.IO.Directory.Exists(given) && File.Exists(TunerState.PathIn(given))) return TunerState.PathIn(given);
            if (File.Exists(given) && Path.GetFileName(given) == TunerState.FileName) return given;
            throw new ArgumentsException($"resume={given}: neither a tune folder with {TunerState.FileName} nor such a file");
        }
        string root = args.Project ?? "runs";
        return System.IO.Directory.Exists(root)
            ? System.IO.Directory.EnumerateFiles(root, TunerState.FileName, SearchOption.AllDirectories)
                .OrderByDescending(File.GetLastWriteTimeUtc).FirstOrDefault()
                ?? throw new ArgumentsException($"resume=True: no {TunerState.FileName} under {Path.GetFullPath(root)}")
            : throw new ArgumentsException($"resume=True: no runs under {Path.GetFullPath(root)}");
    }

    // Files named relative to where the tune began are made absolute, so that trials and a resume started elsewhere
    // (a Slurm step, another folder) find them.
    static OspreyArgs Absolute(OspreyArgs args)
    {
        static string? Full(string? path) => path is not null && File.Exists(path) ? Path.GetFullPath(path) : path;
        return args with
        {
            Data = Full(args.Data), Model = Full(args.Model), Space = Full(args.Space), Hostfile = Full(args.Hostfile),
            DistillModel = Full(args.DistillModel),
        };
    }

    static void Check(OspreyArgs args)
    {
        if (args.Data is null) throw new ArgumentsException("tune needs data=… (a dataset YAML, or data=shapes)");
        if (args.Iterations < 1) throw new ArgumentsException($"iterations={args.Iterations}: must be at least 1");
        if (args.Epochs < 1) throw new ArgumentsException($"epochs={args.Epochs}: must be at least 1");
        if (args.GracePeriod < 1) throw new ArgumentsException($"grace_period={args.GracePeriod}: must be at least 1");
        if (args.Nproc > 1)
            throw new ArgumentsException($"nproc={args.Nproc}: a trial is one process per slot; run trials side by side with trials_at_once=");
        if (args.Search == SearchMethod.Asha && !args.Val)
            throw new ArgumentsException("search=asha judges trials by every epoch's validation: it needs val=True");
    }

    /// <summary>Genetic: trial <paramref name="index"/> may be created once every trial it is bred from
    /// (index ≤ <paramref name="index"/> − <see cref="TunerState.BreedingLag"/>) has ended. ASHA: always.</summary>
    public bool CanCreate(int index) =>
        State.Search != SearchMethod.Genetic || State.Trials.Where(t => t.Index <= index - State.BreedingLag).All(t => t.Ended);

    /// <summary>
    /// Trial <paramref name="index"/>'s hyperparameters. ASHA: a uniform draw from the space. Genetic: trial 0 is the
    /// arguments' own values (as Ultralytics' first iteration); later trials are bred (<see cref="GeneticMutation"/>) from
    /// the trials with index ≤ index − lag, failed ones at fitness 0; a trial with none of them yet (lag &gt; 1) mutates the
    /// arguments' values. Lag 1 (one trial at a time) is exactly Ultralytics' sequential rule; with more, the order trials
    /// finish in cannot change any trial's hyperparameters.
    /// </summary>
    public Dictionary<string, double> Hyperparameters(int index)
    {
        var random = new TuneRandom(State.Seed, index);
        if (State.Search == SearchMethod.Asha) return new(Space.Sample(random), StringComparer.Ordinal);
        var defaults = Space.ValuesOf(Args);
        if (index == 0) return new(defaults, StringComparer.Ordinal);
        var parents = State.Trials.Where(t => t.Index <= index - State.BreedingLag)
            .Select(t => new ScoredTrial(t.Status == TrialStatus.Failed ? 0 : t.BestFitness ?? 0, t.Hyperparameters)).ToList();
        if (parents.Count == 0) parents.Add(new ScoredTrial(0, defaults));
        return new(GeneticMutation.Mutate(Space, parents, random), StringComparer.Ordinal);
    }

    /// <summary>
    /// The <c>osprey train</c> arguments of <paramref name="trial"/> in <paramref name="slot"/>: every argument the tune
    /// was given (but the tuner's own), its hyperparameters, the tune's epochs and image size, its run folder, and the
    /// slot's device and worker cap. A trial launched before continues from its weights/last.ckpt when there is one.
    /// </summary>
    public IReadOnlyList<string> TrialArguments(TrialRecord trial, TrialSlot slot)
    {
        int workers = slot.Threads is { } threads ? Math.Min(Args.Workers, threads) : Args.Workers;
        var placement = new[] { $"device={slot.Device}", $"workers={workers}" };
        string checkpoint = Path.Combine(trial.RunDirectory, "weights", "last.ckpt");
        if (trial.Launches > 0 && File.Exists(checkpoint)) return new[] { $"resume={checkpoint}" }.Concat(placement).ToArray();
        var tokens = ArgsSchema.All.Where(s => Args.IsGiven(s.Key) && !TunerKeys.Contains(s.Key) && !trial.Hyperparameters.ContainsKey(s.Key))
            .Select(s => $"{s.Key}={ArgsSchema.Format(s.Property.GetValue(Args))}").ToList();
        tokens.AddRange(Space.Dimensions.Select(d => $"{d.Key}={ArgsSchema.Format(d.Integer ? (object)(int)trial.Hyperparameters[d.Key] : trial.Hyperparameters[d.Key])}"));
        tokens.AddRange(new[]
        {
            $"epochs={State.Epochs}", $"imgsz={State.ImageSize}", $"project={Path.GetDirectoryName(trial.RunDirectory)}",
            $"name={Path.GetFileName(trial.RunDirectory)}", "exist_ok=True",
        });
        tokens.AddRange(placement);
        return tokens;
    }
}
