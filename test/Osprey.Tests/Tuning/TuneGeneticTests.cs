using Osprey.Tuning;

namespace Osprey.Tests.Tuning;

/// <summary>Ultralytics' genetic rule: parents, weights, factors, bounds, rounding, determinism.</summary>
public class TuneGeneticTests
{
    static readonly SearchSpace Space = SearchSpace.Genetic;

    // A parent well inside every range, with no zero gene (a zero gene can never change: 0 × factor).
    static Dictionary<string, double> Middle() =>
        Space.Dimensions.ToDictionary(d => d.Key, d => Math.Round(d.Min + 0.37 * (d.Max - d.Min), 5));

    [Fact]
    public void ChildrenStayInBoundsAreRoundedToFivePlacesAndDifferFromTheirParent()
    {
        var parent = Middle();
        for (int trial = 0; trial < 200; trial++)
        {
            var child = GeneticMutation.Mutate(Space, new[] { new ScoredTrial(0.5, parent) }, new TuneRandom(7, trial));
            Assert.Equal(Space.Keys, child.Keys);
            foreach (var d in Space.Dimensions)
            {
                Assert.InRange(child[d.Key], d.Min, d.Max);
                Assert.Equal(Math.Round(child[d.Key], 5), child[d.Key]);
            }
            Assert.Contains(Space.Keys, k => child[k] != parent[k]);
        }
    }

    [Fact]
    public void FactorsAreUltralyticsClippedMultipliersWithAtLeastOneChange()
    {
        int unchanged = 0, genes = 0;
        for (int trial = 0; trial < 500; trial++)
        {
            var factors = GeneticMutation.Factors(Space, new TuneRandom(3, trial));
            Assert.All(factors, f => Assert.InRange(f, 0.3, 3.0));
            Assert.Contains(factors, f => f != 1.0);
            unchanged += factors.Count(f => f == 1.0);
            genes += factors.Length;
        }
        // each gene mutates with probability 0.8 (a factor of exactly 1 otherwise)
        Assert.InRange(unchanged / (double)genes, 0.17, 0.23);
        // a gene of gain 0 never changes (Ultralytics' gains, e.g. momentum's 0.3, scale the step)
        var frozen = SearchSpace.From(new[] { new SearchDimension("lr0", 0, 1, Gain: 0), new SearchDimension("lrf", 0, 1) });
        Assert.All(Enumerable.Range(0, 50), t => Assert.Equal(1.0, GeneticMutation.Factors(frozen, new TuneRandom(1, t))[0]));
    }

    [Fact]
    public void TheSameSeedAndTrialGiveTheSameChildOtherTrialsOrSeedsDoNot()
    {
        var results = new[] { new ScoredTrial(0.3, Middle()), new ScoredTrial(0.6, Middle()) };
        var a = GeneticMutation.Mutate(Space, results, new TuneRandom(42, 5));
        var b = GeneticMutation.Mutate(Space, results, new TuneRandom(42, 5));
        Assert.Equal(a, b);
        Assert.NotEqual(a, GeneticMutation.Mutate(Space, results, new TuneRandom(42, 6)));
        Assert.NotEqual(a, GeneticMutation.Mutate(Space, results, new TuneRandom(43, 5)));
    }

    [Fact]
    public void ParentsAreTheBestFiveWeightedByFitnessAboveTheLowestOfThem()
    {
        var results = new[] { 0.1, 0.7, 0.3, 0.9, 0.2, 0.5, 0.05 }
            .Select(f => new ScoredTrial(f, new Dictionary<string, double> { ["lr0"] = f })).ToArray();
        var parents = GeneticMutation.Parents(results);
        Assert.Equal(new[] { 0.9, 0.7, 0.5, 0.3, 0.2 }, parents.Select(p => p.Fitness));
        // weights: fitness − 0.2 + 1e-6 (the lowest parent keeps only 1e-6)
        var weights = GeneticMutation.SelectionWeights(parents);
        Assert.Equal(new[] { 0.7 + 1e-6, 0.5 + 1e-6, 0.3 + 1e-6, 0.1 + 1e-6, 1e-6 }, weights, new Tolerance(1e-12));

        // picked in proportion to the weights (total 1.6): 20 000 picks, each share within 0.01 of its weight / 1.6
        var counts = new int[5];
        for (int i = 0; i < 20_000; i++) counts[GeneticMutation.Pick(weights, new TuneRandom(11, i))]++;
        for (int p = 0; p < 5; p++) Assert.InRange(counts[p] / 20_000.0, weights[p] / weights.Sum() - 0.01, weights[p] / weights.Sum() + 0.01);
        Assert.True(counts[4] < 5, $"the lowest parent was picked {counts[4]} times");
    }

    [Fact]
    public void AChildTakesItsGenesFromOneParent()
    {
        var space = SearchSpace.From(new[] { new SearchDimension("lr0", 0, 1), new SearchDimension("lrf", 0, 1) });
        var low = new ScoredTrial(0.0, new Dictionary<string, double> { ["lr0"] = 0.1, ["lrf"] = 0.1 });
        var high = new ScoredTrial(1.0, new Dictionary<string, double> { ["lr0"] = 0.6, ["lrf"] = 0.6 });
        for (int t = 0; t < 50; t++)
        {
            // weights 1e-6 and 1 + 1e-6: the child is the better parent's, its genes within [0.3, 3] × 0.6
            var child = GeneticMutation.Mutate(space, new[] { low, high }, new TuneRandom(5, t));
            Assert.All(child.Values, v => Assert.InRange(v, 0.18, 1.0));
        }
    }

    sealed class Tolerance(double epsilon) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= epsilon;
        public int GetHashCode(double value) => 0;
    }
}
