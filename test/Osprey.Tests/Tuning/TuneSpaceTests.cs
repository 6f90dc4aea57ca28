using Osprey.Config;
using Osprey.Tests.Models;
using Osprey.Tuning;

namespace Osprey.Tests.Tuning;

/// <summary>The default spaces, the YAML override and its errors, sampling, and how tune_results.csv writes numbers.</summary>
public class TuneSpaceTests
{
    static string Write(string yaml)
    {
        string path = Path.Combine(TestModels.TempDir(), "space.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    [Fact]
    public void DefaultSpacesAreUltralyticsOwnWithoutTheKeysOspreyLacks()
    {
        // engine/tuner.py (8.3): 23 keys less bgr and copy_paste; momentum's gain 0.3
        Assert.Equal(new[] { "lr0", "lrf", "momentum", "weight_decay", "warmup_epochs", "warmup_momentum", "box", "cls", "dfl", "hsv_h",
            "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear", "perspective", "flipud", "fliplr", "mosaic", "mixup" }, SearchSpace.Genetic.Keys);
        Assert.Equal(new SearchDimension("momentum", 0.7, 0.98, 0.3), SearchSpace.Genetic.Dimensions[2]);
        Assert.Equal((1e-5, 1e-1), (SearchSpace.Genetic.Dimensions[0].Min, SearchSpace.Genetic.Dimensions[0].Max));
        Assert.Equal((0.2, 4.0, 6.0), (SearchSpace.Genetic.Dimensions[7].Min, SearchSpace.Genetic.Dimensions[7].Max, SearchSpace.Genetic.Dimensions[8].Max));
        // utils/tuner.py default_space: lr0 up to 1e-2, dfl up to 12, close_mosaic randint(0, 11); bgr, cutmix, copy_paste left out
        Assert.Equal(22, SearchSpace.Asha.Keys.Count);
        Assert.Equal((1e-5, 1e-2), (SearchSpace.Asha.Dimensions[0].Min, SearchSpace.Asha.Dimensions[0].Max));
        Assert.Equal(new SearchDimension("close_mosaic", 0, 10, 1, Integer: true), SearchSpace.Asha.Dimensions[^1]);
        Assert.All(SearchSpace.Asha.Keys.Concat(SearchSpace.Genetic.Keys), k => Assert.NotNull(ArgsSchema.Find(k)));
        Assert.Same(SearchSpace.Asha, SearchSpace.For(ArgsParser.Parse(new[] { "search=asha" })));
        Assert.Same(SearchSpace.Genetic, SearchSpace.For(new OspreyArgs()));
    }

    [Fact]
    public void AYamlSpaceReplacesTheDefaultInItsOrder()
    {
        string path = Write("# my space\nmomentum: [0.6, 0.95, 0.3]\nlr0: [1e-4, 0.02]\nclose_mosaic: [0, 5]\n");
        var space = SearchSpace.For(ArgsParser.Parse(new[] { $"space={path}", "search=asha" }));
        Assert.Equal(new[] { "momentum", "lr0", "close_mosaic" }, space.Keys);
        Assert.Equal(new SearchDimension("momentum", 0.6, 0.95, 0.3), space.Dimensions[0]);
        Assert.Equal(new SearchDimension("lr0", 1e-4, 0.02), space.Dimensions[1]);
        Assert.True(space.Dimensions[2].Integer);
    }

    [Theory]
    [InlineData("lr: [0.001, 0.1]\n", "'lr' is not an osprey argument; did you mean 'lr0'?")]
    [InlineData("lr0: 0.01\n", "'lr0' needs [min, max] or [min, max, gain]")]
    [InlineData("lr0: [0.01]\n", "'lr0' needs [min, max] or [min, max, gain]")]
    [InlineData("lr0: [0.1, 0.01]\n", "'lr0' has min 0.1 above max 0.01")]
    [InlineData("lr0: [small, 0.1]\n", "'lr0': 'small' is not a number")]
    [InlineData("optimizer: [0, 1]\n", "'optimizer' is not a number argument and cannot be tuned")]
    [InlineData("epochs: [1, 9]\n", "'epochs' sets the tuner itself and cannot be tuned")]
    [InlineData("lr0: [0.001, 0.1\n", "not valid YAML at line")]
    [InlineData("lr0: [0.001, 0.1]\nlr0: [0.01, 0.2]\n", "not valid YAML at line 2: Duplicate key lr0")]
    [InlineData("- lr0\n", "a search space is a mapping")]
    public void ABadSpaceIsAnErrorNamingTheFileAndTheProblem(string yaml, string problem)
    {
        string path = Write(yaml);
        var e = Assert.Throws<ArgumentsException>(() => SearchSpace.Load(path));
        Assert.StartsWith(path, e.Message);
        Assert.Contains(problem, e.Message);
        Assert.Contains("space=/no/such.yaml: no such file", Assert.Throws<ArgumentsException>(() => SearchSpace.Load("/no/such.yaml")).Message);
    }

    [Fact]
    public void SamplesCoverEachRangeAndIntegersIncludeBothEnds()
    {
        var seen = new HashSet<double>();
        for (int trial = 0; trial < 400; trial++)
        {
            var values = SearchSpace.Asha.Sample(new TuneRandom(0, trial));
            foreach (var d in SearchSpace.Asha.Dimensions) Assert.InRange(values[d.Key], d.Min, d.Max);
            seen.Add(values["close_mosaic"]);
        }
        Assert.Equal(Enumerable.Range(0, 11).Select(i => (double)i), seen.Order());
        Assert.Equal(SearchSpace.Asha.Sample(new TuneRandom(0, 3)), SearchSpace.Asha.Sample(new TuneRandom(0, 3)));
    }

    [Fact]
    public void TheFirstGeneticTrialIsTheArgumentsOwnValues()
    {
        var values = SearchSpace.Genetic.ValuesOf(ArgsParser.Parse(new[] { "lr0=0.02", "degrees=200" }));
        Assert.Equal(0.02, values["lr0"]);
        Assert.Equal(45.0, values["degrees"]);        // clamped to the space
        Assert.Equal(0.937, values["momentum"]);      // the default
    }

    [Theory]
    [InlineData(0.01, "0.01")]
    [InlineData(1e-05, "1e-05")]
    [InlineData(5e-05, "5e-05")]
    [InlineData(0.0001, "0.0001")]
    [InlineData(1.0, "1.0")]
    [InlineData(0.0, "0.0")]
    [InlineData(12.5, "12.5")]
    public void ResultsWriteNumbersAsPythonDoes(double value, string text) => Assert.Equal(text, TuneOutputs.Python(value));
}
